package config

import _ "embed"

// DefaultFileName names the configuration an image carries when it is
// built without one.
const DefaultFileName = "default.toml"

// DefaultTOML is that configuration: the Debian guest the image embeds
// (make guest), one vCPU, 512 MiB.
//
//go:embed default.toml
var DefaultTOML []byte

// Default parses DefaultTOML against env.
func Default(env Env) (*Config, []error) {
	return Parse(DefaultFileName, DefaultTOML, env)
}

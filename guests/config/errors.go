package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Error is one problem in a configuration file.
type Error struct {
	// File is the name the file was parsed under.
	File string
	// Line and Column locate the offending key (1-based; the column
	// counts bytes); 0 when the problem has no place (the file's size).
	// A missing key is reported at its table's header.
	Line, Column int
	// VM is the VM's name as written, "" when it has none or the problem
	// is outside the VMs; Index is the VM's number among the [[vm]]
	// tables (1-based), 0 outside the VMs.
	VM    string
	Index int
	// Field is the key's path inside its VM ("memory",
	// "modules[0].file"), or from the file's root outside the VMs
	// ("host.reserve_memory"); "" for the file as a whole.
	Field string
	Msg   string
}

// Error writes file:line:column: vm "name": field "key": message, leaving
// out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	switch {
	case e.VM != "":
		fmt.Fprintf(&b, "vm %q: ", e.VM)
	case e.Index > 0:
		fmt.Fprintf(&b, "vm #%d: ", e.Index)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// trimTOML drops the decoder's "toml: " prefix: the file name says what
// the message is about.
func trimTOML(s string) string { return strings.TrimPrefix(s, "toml: ") }

// field is one key the format knows, derived from the decoder's target
// structs so that the two never disagree.
type field struct {
	name string
	// want says what the value must be, for type errors.
	want string
	// sub are a table's (or an array of tables') keys.
	sub []field
}

var (
	vmSchema = schemaOf(reflect.TypeOf(vmFields{}))
	// rootSchema has vm too, which the VMs' own units decode, so that a
	// misspelt [[vms]] is told about it.
	rootSchema = append(schemaOf(reflect.TypeOf(rootFields{})),
		field{name: "vm", want: "[[vm]] tables", sub: vmSchema})
)

func schemaOf(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		f := field{name: sf.Tag.Get("toml")}
		ft := sf.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.String:
			f.want = "a string"
		case reflect.Int64:
			f.want = "an integer"
		case reflect.Bool:
			f.want = "true or false"
		case reflect.Struct:
			f.sub = schemaOf(ft)
			f.want = "a table with the keys " + names(f.sub)
		case reflect.Slice:
			if ft.Elem().Kind() == reflect.Struct {
				f.sub = schemaOf(ft.Elem())
				f.want = "a list of tables with the keys " + names(f.sub)
			} else {
				f.want = "a list of strings"
			}
		}
		fs = append(fs, f)
	}
	return fs
}

func names(fs []field) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.name)
	}
	return strings.Join(s, ", ")
}

func find(fs []field, name string) *field {
	for i := range fs {
		if fs[i].name == name {
			return &fs[i]
		}
	}
	return nil
}

// checkUnknown reports every key the format does not have, once per
// unknown table or key, and leaves it out of its unit's document so that
// the decoder sees only known keys.
func (p *parse) checkUnknown() {
	seen := map[string]bool{}
	for i := range p.doc.keys {
		k := &p.doc.keys[i]
		var rel []elem
		schema := rootSchema
		label, number := "", 0
		switch {
		case k.unit == unitNone:
			continue
		case k.unit >= 0:
			rel = k.path[1:]
			schema = vmSchema
			label, number = p.doc.vmLabel(k.unit), k.unit+1
		default:
			rel = k.path
		}
		bad := unknownPrefix(schema, rel)
		if bad < 0 {
			continue
		}
		p.doc.dropped[i] = true
		if k.keep.end == k.keep.start {
			// Inside an inline value, which stays in the unit's
			// document: the unit is not decoded (the decoder would
			// report the key again, at a cost that grows with the
			// file for each one).
			p.undecodable[k.unit] = true
		}
		// The unknown step is named without an array index: [[vms]]
		// twice is one unknown table.
		name := append(append([]elem(nil), rel[:bad]...), elem{name: rel[bad].name, index: -1})
		where := strconv.Itoa(k.unit) + ":" + pathString(name)
		if seen[where] {
			continue
		}
		seen[where] = true
		p.doc.reported[k.offset] = true
		level := schema
		for _, e := range rel[:bad] {
			level = find(level, e.name).sub
		}
		what := "key"
		if k.header && bad == len(rel)-1 {
			what = "table"
		}
		msg := fmt.Sprintf("unknown %s", what)
		if s := suggest(rel[bad].name, level); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += "; the keys here are " + names(level)
		}
		e := p.at(k, label, number, pathString(name), msg)
		if k.unit >= 0 {
			p.vmErrs[k.unit] = append(p.vmErrs[k.unit], e)
		} else {
			p.errs = append(p.errs, e)
		}
	}
}

// unknownPrefix returns the index of the first step of rel that the
// schema does not know, or -1. Below a key that is not a table the
// decoder judges the type.
func unknownPrefix(schema []field, rel []elem) int {
	level := schema
	for i, e := range rel {
		f := find(level, e.name)
		if f == nil {
			return i
		}
		if f.sub == nil {
			return -1
		}
		level = f.sub
	}
	return -1
}

// suggest returns the known key closest to name when it is close enough
// to be a slip: an edit distance of at most a third of its length (at
// least 1, at most 3).
func suggest(name string, fs []field) string {
	limit := min(max(len(name)/3, 1), 3)
	best, bestDist := "", limit+1
	for _, f := range fs {
		if d := editDistance(strings.ToLower(name), f.name, limit); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b
// (Levenshtein with adjacent transpositions: "hots" is one step from
// "host"), or limit+1 when it is more than limit. Names longer than 64
// bytes are never close.
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit + 1
	}
	var rows [3][65]int
	for j := 0; j <= len(b); j++ {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		prev2, prev, cur := &rows[(i+1)%3], &rows[(i+2)%3], &rows[i%3]
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
	}
	if d := rows[len(a)%3][len(b)]; d <= limit {
		return d
	}
	return limit + 1
}

// typeMessage explains a value of the wrong type.
func typeMessage(k *key) string {
	want := "another type"
	var f *field
	if k.unit >= 0 {
		f = fieldAt(vmSchema, k.path[1:])
	} else {
		f = fieldAt(rootSchema, k.path)
	}
	if f != nil {
		want = f.want
		if k.kind == unstable.Array && strings.HasPrefix(want, "a list") {
			return "an element of the list has the wrong type; want " + want
		}
	}
	got := kindName(k)
	if len(k.raw) > 0 && len(k.raw) <= 40 {
		got = string(k.raw) + " is " + got
	} else {
		got = "the value is " + got
	}
	return fmt.Sprintf("%s; want %s", got, want)
}

// fieldAt finds the schema entry of a path, nil when it has none.
func fieldAt(schema []field, rel []elem) *field {
	level := schema
	var f *field
	for _, e := range rel {
		if f = find(level, e.name); f == nil {
			return nil
		}
		level = f.sub
	}
	return f
}

func kindName(k *key) string {
	if k.header {
		return "a table"
	}
	switch k.kind {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "a list"
	case unstable.InlineTable:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "of another type"
}

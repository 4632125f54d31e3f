package emulator

// Firmware and boot loaders draw on the serial console with terminal
// control sequences (OVMF clears the screen and sets modes, GRUB positions
// the cursor for its menu). They are removed before markers are searched
// and logs are shown. The grammar is ECMA-48 section 5: CSI sequences
// (ESC [ parameters intermediates final), control strings (OSC, DCS, SOS,
// PM, APC) ended by BEL or ST (ESC \), and two- or three-byte escape
// sequences. Carriage returns and other C0 controls except newline and tab
// are dropped too.

type escapeState uint8

const (
	escText       escapeState = iota
	escStart                  // after ESC
	escCharset                // after ESC and an intermediate byte: one more byte ends it
	escCSI                    // inside ESC [ ...
	escString                 // inside a control string
	escStringSeen             // ESC inside a control string: ST if '\' follows
)

// Sequences longer than these are taken as garbage so that a stray ESC
// cannot swallow the rest of a log.
const (
	maxCSILength    = 64
	maxStringLength = 512
)

const (
	esc = 0x1b
	bel = 0x07
	del = 0x7f
)

// escapeStripper removes control sequences from a byte stream. It keeps its
// state between calls, so a sequence split across reads is still removed.
type escapeStripper struct {
	state escapeState
	n     int // bytes consumed in the current CSI or control string
}

// Strip appends p, less control sequences and controls, to dst.
func (s *escapeStripper) Strip(dst, p []byte) []byte {
	for _, c := range p {
		dst = s.step(dst, c)
	}
	return dst
}

func (s *escapeStripper) step(dst []byte, c byte) []byte {
	switch s.state {
	case escStart:
		s.n = 0
		switch {
		case c == '[':
			s.state = escCSI
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			s.state = escString
		case c >= 0x20 && c <= 0x2f: // intermediate: charset designation and the like
			s.state = escCharset
		case c == esc:
			// ESC ESC: the first was lone; stay after an ESC.
		case c < 0x20 || c == del:
			s.state = escText
			return s.text(dst, c)
		default: // final byte of a two-byte sequence (ESC c, ESC 7, ESC =, ...)
			s.state = escText
		}
		return dst
	case escCharset:
		s.state = escText
		if c < 0x20 || c == del {
			return s.text(dst, c)
		}
		return dst
	case escCSI:
		s.n++
		switch {
		case c >= 0x40 && c <= 0x7e: // final byte
			s.state = escText
		case c >= 0x20 && c <= 0x3f && s.n < maxCSILength: // parameter or intermediate
		default: // not a CSI after all
			s.state = escText
			if c < 0x20 || c == del {
				return s.text(dst, c)
			}
		}
		return dst
	case escString:
		s.n++
		switch {
		case c == bel:
			s.state = escText
		case c == esc:
			s.state = escStringSeen
		case c == '\n' || s.n >= maxStringLength: // unterminated: give the text back its lines
			s.state = escText
			return s.text(dst, c)
		}
		return dst
	case escStringSeen:
		if c == '\\' {
			s.state = escText
			return dst
		}
		s.state = escStart
		return s.step(dst, c)
	}
	return s.text(dst, c)
}

func (s *escapeStripper) text(dst []byte, c byte) []byte {
	switch {
	case c == esc:
		s.state = escStart
	case c == '\n' || c == '\t':
		dst = append(dst, c)
	case c < 0x20 || c == del:
		// carriage return, bell, backspace, NUL: nothing to show
	default:
		dst = append(dst, c)
	}
	return dst
}

// StripEscapes returns b without terminal control sequences, carriage
// returns and other control characters (newline and tab stay).
func StripEscapes(b []byte) string {
	var s escapeStripper
	return string(s.Strip(nil, b))
}

package config

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Units are the parts of the file decoded on their own: unitHost for the
// keys outside every [[vm]] table, 0, 1, ... for the [[vm]] tables in
// file order.
const (
	unitHost = -1
	// unitNone holds the keys already reported as misplaced, decoded in
	// no unit.
	unitNone = -2
)

// maxValueDepth bounds how deep the index follows arrays and inline
// tables: the schema has two levels (modules = [{file = ...}]), and
// following a deeply nested value would cost quadratic time for nothing.
const maxValueDepth = 4

// elem is one step of a key's path: a name, and the element of an array
// of tables or of an array value when index >= 0.
type elem struct {
	name  string
	index int
}

// key is one key of the file: a table header or a key-value, at the top
// level or inside an inline value.
type key struct {
	path   []elem
	unit   int
	header bool
	// offset is the key's first byte; line and column its position
	// (1-based, the column in bytes, as go-toml counts).
	offset       int
	line, column int
	// span covers the key-value from its key to the end of its value
	// (the header's key for a header).
	span span
	// kind is the value's kind; raw its text for a scalar, and text
	// its decoded value (a string's contents).
	kind unstable.Kind
	raw  []byte
	text []byte
	// keep is what the unit's document keeps of the file for this key:
	// the key-value, or the header's line; empty for a key inside an
	// inline value, which its enclosing key-value carries.
	keep span
}

type span struct{ start, end int }

// field is the key's path as errors name it: inside its VM for a VM's
// key, from the root otherwise.
func (k *key) field() string {
	if k.unit >= 0 && len(k.path) > 0 {
		return pathString(k.path[1:])
	}
	return pathString(k.path)
}

// vmLabel is VM i's name as written, for messages: "" when it has none
// that reads well.
func (d *document) vmLabel(i int) string {
	k := d.lookup("vm[" + strconv.Itoa(i) + "].name")
	if k == nil || k.kind != unstable.String || len(k.text) == 0 || len(k.text) > 2*MaxNameLength {
		return ""
	}
	for _, r := range string(k.text) {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ""
		}
	}
	return string(k.text)
}

func (s span) contains(off int) bool { return off >= s.start && off < s.end }

// shapeError is a key in a place the format does not allow.
type shapeError struct {
	key   *key
	field string
	msg   string
}

// document is the index of a file: every key with its position and the
// unit it belongs to, from go-toml's unstable parser.
type document struct {
	data  []byte
	lines []int // offset of each line's first byte
	keys  []key
	// byPath finds a key by its path ("vm[0].memory").
	byPath map[string]int
	vms    int
	// vmHeaders are the key indices of the [[vm]] headers.
	vmHeaders []int
	shape     []shapeError
	// reported marks the offsets of keys reported as unknown; dropped
	// the indices of keys left out of their unit's document.
	reported map[int]bool
	dropped  map[int]bool
	buf      []byte
}

// index reads every expression of data. data must be a TOML document
// the decoder accepted: index reports the parser's error otherwise.
func index(data []byte) (*document, error) {
	d := &document{data: data, byPath: map[string]int{}, reported: map[int]bool{}, dropped: map[int]bool{}}
	d.lines = lineStarts(data)
	var p unstable.Parser
	p.Reset(data)
	unit := unitHost
	var table []elem
	// arrays counts the elements of each array of tables, by path.
	arrays := map[string]int{}
	var misplaced []int
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			names, first := keyParts(e)
			isArray := e.Kind == unstable.ArrayTable
			switch {
			case names[0] != "vm":
				unit = unitHost
			case isArray && len(names) == 1:
				unit = d.vms
				d.vms++
			case d.vms == 0:
				unit = unitNone
			default:
				unit = d.vms - 1
			}
			table = resolve(names, isArray, arrays)
			k := d.add(key{path: table, unit: unit, header: true, offset: first,
				span: span{first, first + 1}, kind: e.Kind, keep: d.lineOf(first)})
			if unit == unitNone {
				misplaced = append(misplaced, k)
			}
			if isArray && len(names) == 1 && names[0] == "vm" {
				d.vmHeaders = append(d.vmHeaders, k)
			}
		case unstable.KeyValue:
			names, _ := keyParts(e)
			path := appendNames(table, names)
			u := unit
			if u == unitHost && len(table) == 0 && names[0] == "vm" {
				u = unitNone
			}
			k := d.keyValue(e, path, u, 0, true)
			if u == unitNone && unit == unitHost {
				misplaced = append(misplaced, k)
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	for _, k := range misplaced {
		d.shape = append(d.shape, shapeError{key: &d.keys[k], field: "vm",
			msg: "a VM is an array table: write [[vm]] and the VM's keys under it"})
	}
	return d, nil
}

// lineStarts lists the offset of each line's first byte.
func lineStarts(data []byte) []int {
	lines := []int{0}
	for i, b := range data {
		if b == '\n' {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// keyValue indexes a key-value and the key-values inside its inline
// value, and returns the index of its key.
func (d *document) keyValue(kv *unstable.Node, path []elem, unit, depth int, top bool) int {
	_, first := keyParts(kv)
	v := kv.Value()
	k := key{path: path, unit: unit, offset: first, span: span{int(kv.Raw.Offset), int(kv.Raw.Offset + kv.Raw.Length)}, kind: v.Kind}
	if v.Kind != unstable.Array && v.Kind != unstable.InlineTable {
		k.raw, k.text = v.Data, v.Data
		if v.Raw.Length > 0 {
			k.raw = d.data[v.Raw.Offset : v.Raw.Offset+v.Raw.Length]
		}
	}
	if top {
		k.keep = k.span
	}
	i := d.add(k)
	d.value(v, path, unit, depth+1)
	return i
}

// value indexes the key-values of an inline table, or of the inline
// tables in an array, under path.
func (d *document) value(v *unstable.Node, path []elem, unit, depth int) {
	if depth > maxValueDepth {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			names, _ := keyParts(kv)
			d.keyValue(kv, appendNames(path, names), unit, depth, false)
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			// Only the inline tables of an array have keys; the schema
			// has no arrays of arrays.
			if it.Node().Kind != unstable.InlineTable {
				continue
			}
			el := append([]elem(nil), path...)
			el[len(el)-1].index = i
			d.value(it.Node(), el, unit, depth+1)
		}
	}
}

func (d *document) add(k key) int {
	k.line, k.column = d.position(k.offset)
	d.keys = append(d.keys, k)
	i := len(d.keys) - 1
	if _, dup := d.byPath[pathString(k.path)]; !dup {
		d.byPath[pathString(k.path)] = i
	}
	return i
}

// keyParts returns the parts of a table's or key-value's key and the
// offset of its first byte.
func keyParts(n *unstable.Node) ([]string, int) {
	var names []string
	first := -1
	it := n.Key()
	for it.Next() {
		part := it.Node()
		if first < 0 {
			first = int(part.Raw.Offset)
		}
		names = append(names, string(part.Data))
	}
	return names, first
}

// resolve gives a table header's path: a name that is an array of tables
// refers to its last element (TOML 1.0, "Array of Tables"), and an
// [[array]] header adds one.
func resolve(names []string, isArray bool, arrays map[string]int) []elem {
	path := make([]elem, 0, len(names))
	for i, n := range names {
		path = append(path, elem{name: n, index: -1})
		s := pathString(path)
		if i == len(names)-1 && isArray {
			path[i].index = arrays[s]
			arrays[s]++
			break
		}
		if count, ok := arrays[s]; ok {
			path[i].index = count - 1
		}
	}
	return path
}

func appendNames(path []elem, names []string) []elem {
	out := make([]elem, 0, len(path)+len(names))
	out = append(out, path...)
	for _, n := range names {
		out = append(out, elem{name: n, index: -1})
	}
	return out
}

// pathString writes a path the way errors name fields:
// "vm[0].modules[1].file".
func pathString(path []elem) string {
	var b strings.Builder
	for i, e := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.name)
		if e.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// position gives the 1-based line and byte column of an offset.
func (d *document) position(off int) (line, column int) {
	i := sort.Search(len(d.lines), func(i int) bool { return d.lines[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, off - d.lines[i] + 1
}

// offset is the inverse of position; -1 for a position outside the file.
func (d *document) offset(line, column int) int {
	if line < 1 || line > len(d.lines) || column < 1 {
		return -1
	}
	return d.lines[line-1] + column - 1
}

// lineOf is the line holding off, without its newline: a table header
// has a line of its own (TOML 1.0: an expression ends with a newline).
func (d *document) lineOf(off int) span {
	line, _ := d.position(off)
	end := len(d.data)
	if line < len(d.lines) {
		end = d.lines[line] - 1
	}
	return span{d.lines[line-1], end}
}

// lookup finds a key by path, nil when the file does not have it.
func (d *document) lookup(path string) *key {
	if i, ok := d.byPath[path]; ok {
		return &d.keys[i]
	}
	return nil
}

// vmHeader is the [[vm]] header of VM i.
func (d *document) vmHeader(i int) *key {
	if i < 0 || i >= len(d.vmHeaders) {
		return nil
	}
	return &d.keys[d.vmHeaders[i]]
}

// keyAt finds the key of unit that starts at off.
func (d *document) keyAt(unit, off int) *key {
	i := sort.Search(len(d.keys), func(i int) bool { return d.keys[i].offset >= off })
	for ; i < len(d.keys) && d.keys[i].offset == off; i++ {
		if d.keys[i].unit == unit {
			return &d.keys[i]
		}
	}
	return nil
}

// valueAt finds the innermost key-value of unit whose text holds off, or
// the header at off.
func (d *document) valueAt(unit, off int) *key {
	var best *key
	for i := range d.keys {
		k := &d.keys[i]
		if k.unit != unit || k.header || !k.span.contains(off) {
			continue
		}
		if best == nil || k.span.end-k.span.start < best.span.end-best.span.start {
			best = k
		}
	}
	if best == nil {
		best = d.keyAt(unit, off)
	}
	return best
}

// unitDocument is the file with everything that is not the unit's
// blanked: bytes become spaces, newlines stay, so that every position in
// it is the position in the file. The buffer is reused by the next call.
func (d *document) unitDocument(unit int) []byte {
	if cap(d.buf) < len(d.data) {
		d.buf = make([]byte, len(d.data))
	}
	buf := d.buf[:len(d.data)]
	for i, b := range d.data {
		if b == '\n' {
			buf[i] = '\n'
		} else {
			buf[i] = ' '
		}
	}
	for i := range d.keys {
		k := &d.keys[i]
		if k.unit == unit && !d.dropped[i] && k.keep.end > k.keep.start {
			copy(buf[k.keep.start:k.keep.end], d.data[k.keep.start:k.keep.end])
		}
	}
	return buf
}

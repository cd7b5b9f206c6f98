package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Parse decodes and checks one event payload. It refuses payloads over
// lim.MaxPayload, malformed JSON, unknown, missing or repeated fields,
// values of the wrong type, and anything Check refuses.
//
// Parse is a single pass over the bytes. It reads JSON (RFC 8259) exactly as
// encoding/json does, including its treatment of strings: escapes are
// decoded, and bytes that are not valid UTF-8 and escaped lone surrogates
// become U+FFFD. Each refusal names the member at which the offending token
// was expected, as the Token-based parser it replaced did (the oracle kept in
// parse_reference_test.go and compared by FuzzParseMatchesReference).
func Parse(payload []byte, lim Limits) (*Event, error) {
	if len(payload) > lim.MaxPayload {
		return nil, errf("", "payload is %d bytes, at most %d allowed", len(payload), lim.MaxPayload)
	}
	p := parser{b: payload}
	ev, err := p.event()
	if err != nil {
		return nil, err
	}
	if p.skipSpace(); p.i < len(p.b) {
		return nil, errf("", "trailing data after the event object")
	}
	if err := ev.Check(lim); err != nil {
		return nil, err
	}
	return ev, nil
}

// loc is a place in the event, as a JSON path. It is turned into a string
// only when a refusal names it, so that parsing allocates no paths.
type loc struct {
	top       string // top-level member name; "items" for anything below it
	item      int    // item index + 1; 0 if not inside an item
	member    string // member name inside the item
	hasMember bool
	elem      int // value array index + 1; 0 if not an array element
}

func (l loc) String() string {
	if l.item == 0 {
		return l.top
	}
	s := l.top + "[" + strconv.Itoa(l.item-1) + "]"
	if l.hasMember {
		s += "." + l.member
	}
	if l.elem > 0 {
		s += "[" + strconv.Itoa(l.elem-1) + "]"
	}
	return s
}

func (l loc) withMember(name string) loc {
	l.member, l.hasMember = name, true
	return l
}

func (l loc) fail(format string, args ...any) error {
	return errf(l.String(), format, args...)
}

// tok is the kind of a JSON token read by next.
type tok uint8

const (
	tokObject tok = iota + 1 // '{', consumed
	tokArray                 // '[', consumed
	tokString                // span s0:s1 between the quotes; plain if it needs no unquoting
	tokNumber                // span s0:s1, valid per the JSON grammar
	tokTrue
	tokFalse
	tokNull
)

type parser struct {
	b      []byte
	i      int
	s0, s1 int  // span of the last string (inside the quotes) or number
	plain  bool // the last string has no escapes and is valid UTF-8

	// The event's strings are unquoted into arena and made into one Go
	// string when the event is complete; pend says where each one goes.
	// Fixed arrays keep small events off the heap; bigArena and morePend
	// take over when they are full.
	arena    [512]byte
	arenaLen int
	bigArena []byte
	pend     [16]pending
	pendLen  int
	morePend []pending
}

// pending is a string of the event, arena[off:end], waiting for the arena
// to become a string.
type pending struct {
	dst      uint8 // dstUID, ...
	item     int   // item index, for dstKey, dstStr and dstElem
	elem     int   // array index, for dstElem
	off, end int
}

const (
	dstUID uint8 = iota
	dstDeviceUID
	dstNamespace
	dstKey
	dstStr
	dstElem
)

// keep unquotes the last string read by scanString into the arena, to be
// stored at dst once the event is complete.
func (p *parser) keep(dst uint8, item, elem int) {
	s := p.b[p.s0:p.s1]
	if !p.plain {
		s = appendUnquoted(nil, s)
	}
	var off, end int
	if p.bigArena == nil && len(s) <= len(p.arena)-p.arenaLen {
		off = p.arenaLen
		p.arenaLen += copy(p.arena[off:], s)
		end = p.arenaLen
	} else {
		if p.bigArena == nil {
			p.bigArena = make([]byte, 0, 2*(p.arenaLen+len(s)))
			p.bigArena = append(p.bigArena, p.arena[:p.arenaLen]...)
		}
		off = len(p.bigArena)
		p.bigArena = append(p.bigArena, s...)
		end = len(p.bigArena)
	}
	d := pending{dst: dst, item: item, elem: elem, off: off, end: end}
	if p.pendLen < len(p.pend) {
		p.pend[p.pendLen] = d
		p.pendLen++
	} else {
		p.morePend = append(p.morePend, d)
	}
}

// finish stores the event's strings, all slices of one allocation.
func (p *parser) finish(ev *Event) {
	var all string
	if p.bigArena != nil {
		all = string(p.bigArena)
	} else {
		all = string(p.arena[:p.arenaLen])
	}
	for k := 0; k < p.pendLen+len(p.morePend); k++ {
		var d *pending
		if k < p.pendLen {
			d = &p.pend[k]
		} else {
			d = &p.morePend[k-p.pendLen]
		}
		s := all[d.off:d.end]
		switch d.dst {
		case dstUID:
			ev.UID = s
		case dstDeviceUID:
			ev.DeviceUID = s
		case dstNamespace:
			ev.Namespace = s
		case dstKey:
			ev.Items[d.item].Key = s
		case dstStr:
			ev.Items[d.item].Value.Str = s
		case dstElem:
			ev.Items[d.item].Value.Array[d.elem].Str = s
		}
	}
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eof(l loc) error {
	return l.fail("malformed JSON: unexpected end of payload")
}

func (p *parser) badChar(l loc, c byte, context string) error {
	return l.fail("malformed JSON: invalid character %s %s", quoteChar(c), context)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c >= utf8.RuneSelf:
		return fmt.Sprintf("byte 0x%02x", c)
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// next reads the next JSON value token at l. Objects and arrays are only
// opened; their contents are read by the caller.
func (p *parser) next(l loc) (tok, error) {
	p.skipSpace()
	if p.i >= len(p.b) {
		return 0, p.eof(l)
	}
	switch c := p.b[p.i]; c {
	case '{':
		p.i++
		return tokObject, nil
	case '[':
		p.i++
		return tokArray, nil
	case '"':
		return tokString, p.scanString(l)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return tokNumber, p.scanNumber(l)
	case 't':
		return tokTrue, p.literal(l, "true")
	case 'f':
		return tokFalse, p.literal(l, "false")
	case 'n':
		return tokNull, p.literal(l, "null")
	default:
		return 0, p.badChar(l, c, "looking for beginning of value")
	}
}

func (p *parser) literal(l loc, lit string) error {
	for k := 0; k < len(lit); k++ {
		if p.i+k >= len(p.b) {
			return p.eof(l)
		}
		if c := p.b[p.i+k]; c != lit[k] {
			return p.badChar(l, c, "in literal "+lit)
		}
	}
	p.i += len(lit)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber reads a number per the JSON grammar. Like encoding/json it
// stops at the first byte that cannot continue the number ("01" is "0"
// followed by a stray "1"), leaving that byte to whoever reads next.
func (p *parser) scanNumber(l loc) error {
	b, i := p.b, p.i
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return p.eof(l)
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return p.badChar(l, c, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) {
			return p.eof(l)
		}
		if !isDigit(b[i]) {
			return p.badChar(l, b[i], "after decimal point in numeric literal")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return p.eof(l)
		}
		if !isDigit(b[i]) {
			return p.badChar(l, b[i], "in exponent of numeric literal")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	p.s0, p.s1, p.i = p.i, i, i
	return nil
}

// scanString reads a string literal starting at its opening quote,
// checking escapes and refusing control characters.
func (p *parser) scanString(l loc) error {
	b := p.b
	plain := true
	for i := p.i + 1; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			p.s0, p.s1, p.plain = p.i+1, i, plain
			p.i = i + 1
			return nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return p.eof(l)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(b) {
						return p.eof(l)
					}
					if !isHex(b[k]) {
						return p.badChar(l, b[k], `in \u hexadecimal character escape`)
					}
				}
				i += 6
			default:
				return p.badChar(l, b[i+1], "in string escape code")
			}
		case c < 0x20:
			return p.badChar(l, c, "in string literal")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			i += size
		}
	}
	return p.eof(l)
}

// name returns the last string read as a member name, without allocating
// for the names the format knows.
func (p *parser) name() string {
	s := p.b[p.s0:p.s1]
	if !p.plain {
		return string(appendUnquoted(nil, s))
	}
	switch string(s) {
	case "uid":
		return "uid"
	case "timestamp":
		return "timestamp"
	case "items":
		return "items"
	case "namespace":
		return "namespace"
	case "device_uid":
		return "device_uid"
	case "key":
		return "key"
	case "value":
		return "value"
	}
	return string(s)
}

// appendUnquoted appends the inside of a string literal that scanString
// accepted, decoded exactly as encoding/json does: invalid UTF-8 bytes and
// unpaired surrogates become U+FFFD.
func appendUnquoted(b, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// member reads the next member name of the object at l, or its closing
// brace (end). first is true right after the opening brace. The name is left
// for name.
func (p *parser) member(l loc, first bool) (end bool, err error) {
	p.skipSpace()
	if p.i >= len(p.b) {
		return false, p.eof(l)
	}
	c := p.b[p.i]
	if c == '}' {
		p.i++
		return true, nil
	}
	if !first {
		if c != ',' {
			return false, p.badChar(l, c, "after object key:value pair")
		}
		p.i++
		p.skipSpace()
		if p.i >= len(p.b) {
			return false, p.eof(l)
		}
		c = p.b[p.i]
	}
	if c != '"' {
		return false, p.badChar(l, c, "looking for beginning of object key string")
	}
	return false, p.scanString(l)
}

// colon reads the ':' before the value of the member at l.
func (p *parser) colon(l loc) error {
	p.skipSpace()
	if p.i >= len(p.b) {
		return p.eof(l)
	}
	if c := p.b[p.i]; c != ':' {
		return p.badChar(l, c, "after object key")
	}
	p.i++
	return nil
}

// elem moves to element n of the array at l, whose location is el, or past
// the closing bracket (end).
func (p *parser) elem(l, el loc, n int) (end bool, err error) {
	p.skipSpace()
	if p.i >= len(p.b) {
		return false, p.eof(l)
	}
	switch c := p.b[p.i]; {
	case c == ']':
		p.i++
		return true, nil
	case c == '}':
		return false, p.badChar(l, c, "after array element")
	case n > 0 && c != ',':
		return false, p.badChar(el, c, "after array element")
	case n > 0:
		p.i++
	}
	return false, nil
}

const (
	seenUID = 1 << iota
	seenTimestamp
	seenItems
	seenNamespace
	seenDeviceUID
)

func (p *parser) event() (*Event, error) {
	var top loc
	t, err := p.next(top)
	if err != nil {
		return nil, err
	}
	if t != tokObject {
		return nil, top.fail("must be an object")
	}
	ev := &Event{}
	var seen uint8
	for first := true; ; first = false {
		end, err := p.member(top, first)
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		name := p.name()
		l := loc{top: name}
		var bit uint8
		switch name {
		case "uid":
			bit = seenUID
		case "timestamp":
			bit = seenTimestamp
		case "items":
			bit = seenItems
		case "namespace":
			bit = seenNamespace
		case "device_uid":
			bit = seenDeviceUID
		default:
			return nil, l.fail("unknown field")
		}
		if seen&bit != 0 {
			return nil, l.fail("appears more than once")
		}
		seen |= bit
		if err := p.colon(l); err != nil {
			return nil, err
		}
		switch bit {
		case seenUID:
			err = p.strField(l, dstUID, 0)
		case seenDeviceUID:
			err = p.strField(l, dstDeviceUID, 0)
		case seenNamespace:
			err = p.strField(l, dstNamespace, 0)
		case seenTimestamp:
			ev.Timestamp, err = p.timestamp(l)
		case seenItems:
			ev.Items, err = p.items(l)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, f := range [...]struct {
		bit  uint8
		name string
	}{{seenUID, "uid"}, {seenTimestamp, "timestamp"}, {seenItems, "items"}, {seenNamespace, "namespace"}, {seenDeviceUID, "device_uid"}} {
		if seen&f.bit == 0 {
			return nil, errf(f.name, "missing")
		}
	}
	p.finish(ev)
	return ev, nil
}

// strField reads a string member, to be stored at dst.
func (p *parser) strField(l loc, dst uint8, item int) error {
	t, err := p.next(l)
	if err != nil {
		return err
	}
	if t != tokString {
		return l.fail("must be a string")
	}
	p.keep(dst, item, 0)
	return nil
}

func (p *parser) timestamp(l loc) (int64, error) {
	t, err := p.next(l)
	if err != nil {
		return 0, err
	}
	if t != tokNumber {
		return 0, l.fail("must be an integer number of Unix milliseconds")
	}
	n := p.b[p.s0:p.s1]
	if v, ok := smallInt(n); ok {
		return v, nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, l.fail("must be an integer number of Unix milliseconds (got %s)", n)
	}
	return v, nil
}

// smallInt parses an optionally negative decimal integer of at most 18
// digits, which cannot overflow; anything else is left to strconv.
func smallInt(s []byte) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func (p *parser) items(l loc) ([]Item, error) {
	t, err := p.next(l)
	if err != nil {
		return nil, err
	}
	if t != tokArray {
		return nil, l.fail("must be an array")
	}
	var scratch [16]Item
	items := scratch[:0]
	for n := 0; ; n++ {
		il := loc{top: "items", item: n + 1}
		end, err := p.elem(l, il, n)
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		it, err := p.item(il)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]Item, len(items))
	copy(out, items)
	return out, nil
}

func (p *parser) item(l loc) (Item, error) {
	var it Item
	t, err := p.next(l)
	if err != nil {
		return it, err
	}
	if t != tokObject {
		return it, l.fail("must be an object")
	}
	var hasKey, hasValue bool
	for first := true; ; first = false {
		end, err := p.member(l, first)
		if err != nil {
			return it, err
		}
		if end {
			break
		}
		name := p.name()
		ml := l.withMember(name)
		switch name {
		case "key":
			if hasKey {
				return it, ml.fail("appears more than once")
			}
			hasKey = true
			if err := p.colon(ml); err != nil {
				return it, err
			}
			if err := p.strField(ml, dstKey, l.item-1); err != nil {
				return it, err
			}
		case "value":
			if hasValue {
				return it, ml.fail("appears more than once")
			}
			hasValue = true
			if err := p.colon(ml); err != nil {
				return it, err
			}
			if it.Value, err = p.value(ml, l.item-1); err != nil {
				return it, err
			}
		default:
			return it, ml.fail("unknown field")
		}
	}
	if !hasKey {
		return it, l.withMember("key").fail("missing")
	}
	if !hasValue {
		return it, l.withMember("value").fail("missing")
	}
	return it, nil
}

// scalar converts the token just read into a number, string or bool value.
// A string is kept for dst (dstStr or dstElem).
func (p *parser) scalar(l loc, t tok, dst uint8, item, elem int) (Value, bool, error) {
	switch t {
	case tokNumber:
		n := p.b[p.s0:p.s1]
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return Value{}, true, l.fail("number %s is out of range", n)
		}
		return Value{Kind: KindNumber, Num: f}, true, nil
	case tokString:
		p.keep(dst, item, elem)
		return Value{Kind: KindString}, true, nil
	case tokTrue:
		return Value{Kind: KindBool, Bool: true}, true, nil
	case tokFalse:
		return Value{Kind: KindBool}, true, nil
	}
	return Value{}, false, nil
}

func (p *parser) value(l loc, item int) (Value, error) {
	t, err := p.next(l)
	if err != nil {
		return Value{}, err
	}
	if v, ok, err := p.scalar(l, t, dstStr, item, 0); ok {
		return v, err
	}
	if t != tokArray {
		return Value{}, l.fail("must be a number, string, bool or flat array of those")
	}
	var scratch [16]Value
	arr := scratch[:0]
	for n := 0; ; n++ {
		el := l
		el.elem = n + 1
		end, err := p.elem(l, el, n)
		if err != nil {
			return Value{}, err
		}
		if end {
			break
		}
		t, err := p.next(el)
		if err != nil {
			return Value{}, err
		}
		v, ok, err := p.scalar(el, t, dstElem, item, n)
		if err != nil {
			return Value{}, err
		}
		if !ok {
			return Value{}, el.fail("array elements must be numbers, strings or bools")
		}
		arr = append(arr, v)
	}
	out := make([]Value, len(arr))
	copy(out, arr)
	return Value{Kind: KindArray, Array: out}, nil
}

// MarshalJSON writes the event in the seed's format, fields in the seed's
// order.
func (e *Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"uid":`)
	writeString(&b, e.UID)
	b.WriteString(`,"timestamp":`)
	b.WriteString(strconv.FormatInt(e.Timestamp, 10))
	b.WriteString(`,"items":[`)
	for i, it := range e.Items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"key":`)
		writeString(&b, it.Key)
		b.WriteString(`,"value":`)
		writeValue(&b, it.Value)
		b.WriteByte('}')
	}
	b.WriteString(`],"namespace":`)
	writeString(&b, e.Namespace)
	b.WriteString(`,"device_uid":`)
	writeString(&b, e.DeviceUID)
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeString(b *bytes.Buffer, s string) {
	out, _ := json.Marshal(s) // a string always marshals
	b.Write(out)
}

func writeValue(b *bytes.Buffer, v Value) {
	switch v.Kind {
	case KindNumber:
		out, _ := json.Marshal(v.Num) // finite by Check
		b.Write(out)
	case KindString:
		writeString(b, v.Str)
	case KindBool:
		b.WriteString(strconv.FormatBool(v.Bool))
	case KindArray:
		b.WriteByte('[')
		for i, el := range v.Array {
			if i > 0 {
				b.WriteByte(',')
			}
			writeValue(b, el)
		}
		b.WriteByte(']')
	}
}

// UnmarshalJSON parses with default limits; it exists so that API clients
// can decode events they fetch. Ingest always goes through Parse.
func (e *Event) UnmarshalJSON(data []byte) error {
	ev, err := Parse(data, DefaultLimits())
	if err != nil {
		return err
	}
	*e = *ev
	return nil
}

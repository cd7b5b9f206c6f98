// Package event defines the event a device publishes and the entry the
// network logs for it, with the strict parser that admits events and the
// deterministic binary encoding that is hashed into blocks.
//
// An event is the seed's JSON document:
//
//	{"uid": "...", "timestamp": 1696248400000,
//	 "items": [{"key": "temperature", "value": 23.5}],
//	 "namespace": "org/group", "device_uid": "device_001"}
//
// Parsing is strict: unknown or repeated fields, wrong types, and values
// outside Limits are refused with an *Error naming the field, so that a
// device gets a reason it can act on and nothing malformed reaches a block.
package event

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// Kind is the type of an item value.
type Kind uint8

// Value kinds, numbered as in the entry encoding (SPEC.md, "Values").
const (
	KindNumber Kind = 1
	KindString Kind = 2
	KindBool   Kind = 3
	KindArray  Kind = 4
)

// Value is an item value: a number, a string, a bool, or a flat array of
// those. Numbers are IEEE-754 binary64, as JSON parsers read them.
type Value struct {
	Kind  Kind
	Num   float64
	Str   string
	Bool  bool
	Array []Value
}

// Item is one measurement of an event.
type Item struct {
	Key   string
	Value Value
}

// Event is a device's event as admitted by Parse.
type Event struct {
	UID       string
	Timestamp int64 // Unix milliseconds
	Items     []Item
	Namespace string // "org/group"
	DeviceUID string
}

// Limits bound what an event may hold. They are part of the network's
// configuration: every node must apply the same limits.
type Limits struct {
	MaxPayload     int // bytes of JSON
	MaxUIDLen      int
	MaxDeviceLen   int
	MaxNSPartLen   int
	MaxItems       int
	MaxKeyLen      int
	MaxStringLen   int
	MaxArrayLen    int
	MaxTimestampMs int64
}

// DefaultLimits are the limits documented in SPEC.md.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:     64 << 10,
		MaxUIDLen:      128,
		MaxDeviceLen:   128,
		MaxNSPartLen:   64,
		MaxItems:       256,
		MaxKeyLen:      128,
		MaxStringLen:   4096,
		MaxArrayLen:    1024,
		MaxTimestampMs: 1<<53 - 1,
	}
}

// Error is a refused event: Field names the offending field (JSON path) and
// Reason says what is wrong with it.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "invalid event: " + e.Reason
	}
	return fmt.Sprintf("invalid event: %s: %s", e.Field, e.Reason)
}

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Check verifies that e satisfies the format rules and lim. Parse calls it;
// decoders of entries call it too, so that a block can never carry an event
// a hub would have refused.
func (e *Event) Check(lim Limits) error {
	if err := checkIdent("uid", e.UID, lim.MaxUIDLen); err != nil {
		return err
	}
	if err := checkIdent("device_uid", e.DeviceUID, lim.MaxDeviceLen); err != nil {
		return err
	}
	if err := CheckNamespace(e.Namespace, lim.MaxNSPartLen); err != nil {
		return err
	}
	if e.Timestamp <= 0 || e.Timestamp > lim.MaxTimestampMs {
		return errf("timestamp", "must be Unix milliseconds in 1..%d", lim.MaxTimestampMs)
	}
	if len(e.Items) == 0 {
		return errf("items", "must not be empty")
	}
	if len(e.Items) > lim.MaxItems {
		return errf("items", "has %d items, at most %d allowed", len(e.Items), lim.MaxItems)
	}
	for i := range e.Items {
		it := &e.Items[i]
		// Field names are built only for an error: Check runs on every
		// event a hub takes in.
		if err := checkKey("key", it.Key, lim.MaxKeyLen); err != nil {
			return inItem(i, err)
		}
		if err := checkValue("value", it.Value, lim, true); err != nil {
			return inItem(i, err)
		}
	}
	return nil
}

// inItem puts an item field's error under items[i].
func inItem(i int, err error) error {
	if e, ok := err.(*Error); ok {
		return &Error{Field: fmt.Sprintf("items[%d].%s", i, e.Field), Reason: e.Reason}
	}
	return err
}

func checkValue(field string, v Value, lim Limits, top bool) error {
	switch v.Kind {
	case KindNumber:
		if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
			return errf(field, "number must be finite")
		}
	case KindString:
		if len(v.Str) > lim.MaxStringLen {
			return errf(field, "string is %d bytes, at most %d allowed", len(v.Str), lim.MaxStringLen)
		}
		if !utf8.ValidString(v.Str) {
			return errf(field, "string is not valid UTF-8")
		}
	case KindBool:
	case KindArray:
		if !top {
			return errf(field, "arrays may not be nested")
		}
		if len(v.Array) > lim.MaxArrayLen {
			return errf(field, "array has %d elements, at most %d allowed", len(v.Array), lim.MaxArrayLen)
		}
		for i, el := range v.Array {
			if err := checkValue("", el, lim, false); err != nil {
				if e, ok := err.(*Error); ok {
					return &Error{Field: fmt.Sprintf("%s[%d]", field, i), Reason: e.Reason}
				}
				return err
			}
		}
	default:
		return errf(field, "must be a number, string, bool or array of those")
	}
	return nil
}

// identByte reports whether c may appear in a uid, device_uid, item key or
// namespace part. The set is small and ASCII so that identifiers are safe in
// MQTT topics, URLs, file names and logs without escaping.
func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':'
}

func checkIdent(field, s string, max int) error {
	if s == "" {
		return errf(field, "must not be empty")
	}
	if len(s) > max {
		return errf(field, "is %d bytes, at most %d allowed", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if !identByte(s[i]) {
			return errf(field, "may hold only A-Z a-z 0-9 - _ . : (found %q)", s[i])
		}
	}
	return nil
}

// checkKey allows what checkIdent allows plus '/' and ' ', which sensor
// names commonly use.
func checkKey(field, s string, max int) error {
	if s == "" {
		return errf(field, "must not be empty")
	}
	if len(s) > max {
		return errf(field, "is %d bytes, at most %d allowed", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !identByte(c) && c != '/' && c != ' ' {
			return errf(field, "may hold only A-Z a-z 0-9 - _ . : / and space (found %q)", c)
		}
	}
	return nil
}

// CheckNamespace verifies that ns has the form "org/group".
func CheckNamespace(ns string, maxPart int) error {
	slash := -1
	for i := 0; i < len(ns); i++ {
		if ns[i] == '/' {
			if slash >= 0 {
				return errf("namespace", "must be org/group with exactly one '/'")
			}
			slash = i
		}
	}
	if slash < 0 {
		return errf("namespace", "must be org/group with exactly one '/'")
	}
	if err := checkIdent("namespace", ns[:slash], maxPart); err != nil {
		return err
	}
	return checkIdent("namespace", ns[slash+1:], maxPart)
}

package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// parseReference is the Token-based parser that Parse replaced, kept as the
// oracle for FuzzParseMatchesReference. It decodes and checks one event payload. It refuses payloads over
// lim.MaxPayload, malformed JSON, unknown, missing or repeated fields,
// values of the wrong type, and anything Check refuses.
func parseReference(payload []byte, lim Limits) (*Event, error) {
	if len(payload) > lim.MaxPayload {
		return nil, errf("", "payload is %d bytes, at most %d allowed", len(payload), lim.MaxPayload)
	}
	p := refParser{dec: json.NewDecoder(bytes.NewReader(payload))}
	p.dec.UseNumber()
	ev, err := p.event()
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, errf("", "trailing data after the event object")
	}
	if err := ev.Check(lim); err != nil {
		return nil, err
	}
	return ev, nil
}

type refParser struct {
	dec *json.Decoder
}

func (p *refParser) token(field string) (json.Token, error) {
	t, err := p.dec.Token()
	if err == io.EOF {
		return nil, errf(field, "malformed JSON: unexpected end of payload")
	}
	if err != nil {
		return nil, errf(field, "malformed JSON: %v", err)
	}
	return t, nil
}

func (p *refParser) delim(field string, want json.Delim) error {
	t, err := p.token(field)
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		what := "an object"
		if want == '[' {
			what = "an array"
		}
		return errf(field, "must be %s", what)
	}
	return nil
}

// object walks the members of a JSON object, calling member for each name.
// It refuses repeated names, so that no two readers of a payload can
// disagree about which value counts.
func (p *refParser) object(field string, member func(name string) error) error {
	if err := p.delim(field, '{'); err != nil {
		return err
	}
	seen := make(map[string]bool, 5)
	for p.dec.More() {
		t, err := p.token(field)
		if err != nil {
			return err
		}
		name := t.(string) // the decoder guarantees object keys are strings
		if seen[name] {
			return errf(refJoin(field, name), "appears more than once")
		}
		seen[name] = true
		if err := member(name); err != nil {
			return err
		}
	}
	_, err := p.token(field) // '}'
	return err
}

func refJoin(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func (p *refParser) event() (*Event, error) {
	ev := &Event{}
	seen := map[string]bool{}
	err := p.object("", func(name string) error {
		seen[name] = true
		switch name {
		case "uid":
			return p.str(name, &ev.UID)
		case "device_uid":
			return p.str(name, &ev.DeviceUID)
		case "namespace":
			return p.str(name, &ev.Namespace)
		case "timestamp":
			return p.timestamp(&ev.Timestamp)
		case "items":
			return p.items(&ev.Items)
		default:
			return errf(name, "unknown field")
		}
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"uid", "timestamp", "items", "namespace", "device_uid"} {
		if !seen[f] {
			return nil, errf(f, "missing")
		}
	}
	return ev, nil
}

func (p *refParser) str(field string, dst *string) error {
	t, err := p.token(field)
	if err != nil {
		return err
	}
	s, ok := t.(string)
	if !ok {
		return errf(field, "must be a string")
	}
	*dst = s
	return nil
}

func (p *refParser) timestamp(dst *int64) error {
	t, err := p.token("timestamp")
	if err != nil {
		return err
	}
	n, ok := t.(json.Number)
	if !ok {
		return errf("timestamp", "must be an integer number of Unix milliseconds")
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return errf("timestamp", "must be an integer number of Unix milliseconds (got %s)", n)
	}
	*dst = v
	return nil
}

func (p *refParser) items(dst *[]Item) error {
	if err := p.delim("items", '['); err != nil {
		return err
	}
	for i := 0; p.dec.More(); i++ {
		field := fmt.Sprintf("items[%d]", i)
		var it Item
		var hasKey, hasValue bool
		err := p.object(field, func(name string) error {
			switch name {
			case "key":
				hasKey = true
				return p.str(field+".key", &it.Key)
			case "value":
				hasValue = true
				v, err := p.value(field+".value", true)
				it.Value = v
				return err
			default:
				return errf(refJoin(field, name), "unknown field")
			}
		})
		if err != nil {
			return err
		}
		if !hasKey {
			return errf(field+".key", "missing")
		}
		if !hasValue {
			return errf(field+".value", "missing")
		}
		*dst = append(*dst, it)
	}
	_, err := p.token("items") // ']'
	return err
}

func (p *refParser) value(field string, top bool) (Value, error) {
	t, err := p.token(field)
	if err != nil {
		return Value{}, err
	}
	switch v := t.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return Value{}, errf(field, "number %s is out of range", v)
		}
		return Value{Kind: KindNumber, Num: f}, nil
	case string:
		return Value{Kind: KindString, Str: v}, nil
	case bool:
		return Value{Kind: KindBool, Bool: v}, nil
	case json.Delim:
		if v != '[' || !top {
			break
		}
		arr := []Value{}
		for i := 0; p.dec.More(); i++ {
			el, err := p.value(fmt.Sprintf("%s[%d]", field, i), false)
			if err != nil {
				return Value{}, err
			}
			arr = append(arr, el)
		}
		if _, err := p.token(field); err != nil {
			return Value{}, err
		}
		return Value{Kind: KindArray, Array: arr}, nil
	}
	if top {
		return Value{}, errf(field, "must be a number, string, bool or flat array of those")
	}
	return Value{}, errf(field, "array elements must be numbers, strings or bools")
}

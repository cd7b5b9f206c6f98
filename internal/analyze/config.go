package analyze

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Config is the analyzer configuration. The master operator records it on
// the chain (a control record), so every node builds the same analyzers
// and every verifier knows which applied at which height.
type Config struct {
	Range     []RangeRule     `json:"range,omitempty"`
	Rate      []RateRule      `json:"rate,omitempty"`
	Stuck     []StuckRule     `json:"stuck,omitempty"`
	Heartbeat []HeartbeatRule `json:"heartbeat,omitempty"`
	IForest   []IForestConfig `json:"iforest,omitempty"`
}

// ParseConfig reads a configuration document strictly: unknown fields and
// invalid rules are refused.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("analyzer config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("analyzer config: trailing data after the document")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every part of the configuration.
func (c Config) Validate() error {
	for i, r := range c.Range {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("analyzer config: range[%d]: %w", i, err)
		}
	}
	for i, r := range c.Rate {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("analyzer config: rate[%d]: %w", i, err)
		}
	}
	for i, r := range c.Stuck {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("analyzer config: stuck[%d]: %w", i, err)
		}
	}
	for i, r := range c.Heartbeat {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("analyzer config: heartbeat[%d]: %w", i, err)
		}
	}
	for i, f := range c.IForest {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("analyzer config: iforest[%d]: %w", i, err)
		}
	}
	return nil
}

// Encode returns the configuration as the JSON recorded on the chain.
func (c Config) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("encode analyzer config: %v", err)) // plain structs of numbers and strings always encode
	}
	return b
}

// Build returns fresh analyzers for the configuration, in a fixed order.
func (c Config) Build() (Set, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var s Set
	if len(c.Range) > 0 {
		s = append(s, NewRange(c.Range))
	}
	if len(c.Rate)+len(c.Stuck)+len(c.Heartbeat) > 0 {
		s = append(s, NewSeries(c.Rate, c.Stuck, c.Heartbeat))
	}
	for _, f := range c.IForest {
		a, err := NewIForest(f)
		if err != nil {
			return nil, err
		}
		s = append(s, a)
	}
	return s, nil
}

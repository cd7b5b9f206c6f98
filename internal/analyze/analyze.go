// Package analyze tags events. Tags are logged inside entries and every hub
// recomputes them before it countersigns a block, so an analyzer must be a
// pure function of the event and of state derived from the chain alone:
// no clocks, no randomness that is not seeded from chain data, no map
// iteration order, no floating-point results that could differ between
// machines.
//
// The tags of every entry in block h are computed from the state after
// blocks 0..h-1; then the state advances past block h. Master and hubs
// follow the same order, so they agree.
package analyze

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"cissan/internal/event"
)

// Analyzer tags events.
type Analyzer interface {
	// Name identifies the analyzer in tags.
	Name() string
	// Tags returns the analyzer's tags for ev under the current state.
	Tags(ev *event.Event) []event.Tag
	// Apply advances the state past one block. Analyzers that train models
	// seed every random choice from chain data such as Block.Hash.
	Apply(b Block)
}

// Block is what an analyzer learns from one block.
type Block struct {
	Height  uint64
	Hash    [32]byte
	Entries []*event.Entry
}

// Set runs analyzers in order.
type Set []Analyzer

// Tags returns every analyzer's tags for ev, in analyzer order.
func (s Set) Tags(ev *event.Event) []event.Tag {
	var out []event.Tag
	for _, a := range s {
		out = append(out, a.Tags(ev)...)
	}
	return out
}

// Apply advances every analyzer past a block.
func (s Set) Apply(b Block) {
	for _, a := range s {
		a.Apply(b)
	}
}

// Stateless reports whether no analyzer keeps state, so that a node need
// not replay the chain through them when it starts.
func (s Set) Stateless() bool {
	for _, a := range s {
		if st, ok := a.(interface{ Stateless() bool }); !ok || !st.Stateless() {
			return false
		}
	}
	return true
}

// Equal reports whether two tag lists are identical, in order.
func Equal(a, b []event.Tag) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RangeRule flags numeric values of Key outside [Min, Max]. An empty
// Namespace applies the rule to every namespace.
type RangeRule struct {
	Namespace string  `json:"namespace,omitempty"`
	Key       string  `json:"key"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
}

// Validate checks a rule.
func (r RangeRule) Validate() error {
	if r.Key == "" {
		return fmt.Errorf("range rule: key must not be empty")
	}
	if math.IsNaN(r.Min) || math.IsNaN(r.Max) || r.Min > r.Max {
		return fmt.Errorf("range rule %q: min must not exceed max", r.Key)
	}
	return nil
}

// Range is a stateless analyzer applying range rules. A value outside its
// rule's range gets a tag labelled "out_of_range" whose score is the
// distance outside the range in ScoreScale units (saturated), so operators
// see by how much.
type Range struct {
	rules map[string][]RangeRule // by key
}

var _ Analyzer = (*Range)(nil)

// NewRange returns a range analyzer with the given rules.
func NewRange(rules []RangeRule) *Range {
	r := &Range{rules: map[string][]RangeRule{}}
	for _, rule := range rules {
		r.rules[rule.Key] = append(r.rules[rule.Key], rule)
	}
	return r
}

// Name implements Analyzer.
func (*Range) Name() string { return "range" }

// Apply implements Analyzer; range rules have no state.
func (*Range) Apply(Block) {}

// Stateless reports that Range keeps no state.
func (*Range) Stateless() bool { return true }

// Tags implements Analyzer. Items are visited in event order and each key is
// tagged at most once, so the output order is fixed by the event.
func (r *Range) Tags(ev *event.Event) []event.Tag {
	if len(r.rules) == 0 {
		return nil
	}
	var out []event.Tag
	for _, it := range ev.Items {
		rules := r.rules[it.Key]
		for _, rule := range rules {
			if rule.Namespace != "" && rule.Namespace != ev.Namespace {
				continue
			}
			if d, ok := outside(it.Value, rule); ok {
				out = append(out, event.Tag{Analyzer: "range", Key: it.Key, Label: "out_of_range", Score: fixed(d)})
				break
			}
		}
	}
	return out
}

// outside returns how far the largest excursion of v lies outside rule.
func outside(v event.Value, rule RangeRule) (float64, bool) {
	switch v.Kind {
	case event.KindNumber:
		switch {
		case v.Num < rule.Min:
			return rule.Min - v.Num, true
		case v.Num > rule.Max:
			return v.Num - rule.Max, true
		}
	case event.KindArray:
		worst, hit := 0.0, false
		for _, el := range v.Array {
			if d, ok := outside(el, rule); ok && (!hit || d > worst) {
				worst, hit = d, true
			}
		}
		return worst, hit
	}
	return 0, false
}

// fixed converts a non-negative distance to ScoreScale fixed point,
// saturating, with the rounding done by math.Round so every platform
// agrees (float64 subtraction and multiplication are exact IEEE operations).
func fixed(d float64) int64 {
	s := float64(d * event.ScoreScale)
	if s >= math.MaxInt64/2 || math.IsInf(s, 0) {
		return math.MaxInt64 / 2
	}
	return int64(math.Round(s))
}

// ParseRangeRule parses "key=min:max" or "org/group:key=min:max".
func ParseRangeRule(s string) (RangeRule, error) {
	lhs, rng, ok := strings.Cut(s, "=")
	if !ok {
		return RangeRule{}, fmt.Errorf("range rule %q: want [namespace:]key=min:max", s)
	}
	var rule RangeRule
	if i := strings.LastIndex(lhs, ":"); i >= 0 && strings.Contains(lhs[:i], "/") {
		rule.Namespace, rule.Key = lhs[:i], lhs[i+1:]
	} else {
		rule.Key = lhs
	}
	lo, hi, ok := strings.Cut(rng, ":")
	if !ok || rule.Key == "" {
		return RangeRule{}, fmt.Errorf("range rule %q: want [namespace:]key=min:max", s)
	}
	var err error
	if rule.Min, err = strconv.ParseFloat(lo, 64); err != nil {
		return RangeRule{}, fmt.Errorf("range rule %q: min: %w", s, err)
	}
	if rule.Max, err = strconv.ParseFloat(hi, 64); err != nil {
		return RangeRule{}, fmt.Errorf("range rule %q: max: %w", s, err)
	}
	if err := rule.Validate(); err != nil {
		return RangeRule{}, fmt.Errorf("range rule %q: min must not exceed max", s)
	}
	return rule, nil
}

// DefaultRangeRules are the rules `cissan up` starts with: plausible
// limits for common sensors.
func DefaultRangeRules() []RangeRule {
	return []RangeRule{
		{Key: "humidity", Min: 0, Max: 100},
		{Key: "temperature", Min: -40, Max: 85},
	}
}

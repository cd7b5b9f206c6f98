package analyze

import (
	"fmt"
	"math"

	"cissan/internal/event"
)

// maxTracked bounds the per-device state a rule analyzer keeps. Past it,
// new (device, key) pairs are not tracked: a rule that depends only on the
// chain's order, so every node ignores the same pairs.
const maxTracked = 200_000

// RateRule flags a numeric value that changed faster than MaxPerSecond
// since the same device's previous value of Key, by event timestamps.
type RateRule struct {
	Namespace    string  `json:"namespace,omitempty"`
	Key          string  `json:"key"`
	MaxPerSecond float64 `json:"max_per_second"`
}

// StuckRule flags a value of Key that a device has reported Repeats times
// in a row, unchanged: a sensor that has stopped measuring.
type StuckRule struct {
	Namespace string `json:"namespace,omitempty"`
	Key       string `json:"key"`
	Repeats   int    `json:"repeats"`
}

// HeartbeatRule flags an event that arrives more than MaxGapMs after the
// same device's previous event (by event timestamps): the device was
// silent for too long.
type HeartbeatRule struct {
	Namespace string `json:"namespace,omitempty"`
	MaxGapMs  int64  `json:"max_gap_ms"`
}

// Validate checks a rule.
func (r RateRule) Validate() error {
	if r.Key == "" || !(r.MaxPerSecond > 0) || math.IsInf(r.MaxPerSecond, 0) {
		return fmt.Errorf("rate rule %q: key must be set and max_per_second positive", r.Key)
	}
	return nil
}

// Validate checks a rule.
func (r StuckRule) Validate() error {
	if r.Key == "" || r.Repeats < 2 {
		return fmt.Errorf("stuck rule %q: key must be set and repeats at least 2", r.Key)
	}
	return nil
}

// Validate checks a rule.
func (r HeartbeatRule) Validate() error {
	if r.MaxGapMs <= 0 {
		return fmt.Errorf("heartbeat rule: max_gap_ms must be positive")
	}
	return nil
}

func applies(ns, ruleNS string) bool { return ruleNS == "" || ruleNS == ns }

type seriesKey struct{ device, key string }

// lastValue is a device's previous numeric value of a key.
type lastValue struct {
	ts      int64
	value   float64
	repeats int // how many times in a row value was seen
}

// Series keeps each device's previous value of every key some rule watches,
// and each device's previous event time, as of the last applied block. It
// is the state behind the rate, stuck and heartbeat rules.
type Series struct {
	rate      []RateRule
	stuck     []StuckRule
	heartbeat []HeartbeatRule
	values    map[seriesKey]lastValue
	lastSeen  map[string]int64
}

var _ Analyzer = (*Series)(nil)

// NewSeries returns an analyzer for the given rules.
func NewSeries(rate []RateRule, stuck []StuckRule, heartbeat []HeartbeatRule) *Series {
	return &Series{rate: rate, stuck: stuck, heartbeat: heartbeat, values: map[seriesKey]lastValue{}, lastSeen: map[string]int64{}}
}

// Name implements Analyzer.
func (*Series) Name() string { return "series" }

func (s *Series) watches(ns, key string) bool {
	for _, r := range s.rate {
		if r.Key == key && applies(ns, r.Namespace) {
			return true
		}
	}
	for _, r := range s.stuck {
		if r.Key == key && applies(ns, r.Namespace) {
			return true
		}
	}
	return false
}

// Tags implements Analyzer: a heartbeat tag first, then per item in event
// order its rate and stuck tags, each rule list in configuration order.
func (s *Series) Tags(ev *event.Event) []event.Tag {
	var out []event.Tag
	if prev, ok := s.lastSeen[ev.DeviceUID]; ok {
		gap := ev.Timestamp - prev
		for _, r := range s.heartbeat {
			if applies(ev.Namespace, r.Namespace) && gap > r.MaxGapMs {
				out = append(out, event.Tag{Analyzer: "heartbeat", Label: "heartbeat_gap", Score: fixed(float64(gap) / 1000)})
				break
			}
		}
	}
	for _, it := range ev.Items {
		if it.Value.Kind != event.KindNumber {
			continue
		}
		prev, ok := s.values[seriesKey{ev.DeviceUID, it.Key}]
		if !ok {
			continue
		}
		for _, r := range s.rate {
			if r.Key != it.Key || !applies(ev.Namespace, r.Namespace) || ev.Timestamp <= prev.ts {
				continue
			}
			rate := math.Abs(it.Value.Num-prev.value) / (float64(ev.Timestamp-prev.ts) / 1000)
			if rate > r.MaxPerSecond {
				out = append(out, event.Tag{Analyzer: "rate", Key: it.Key, Label: "rate_of_change", Score: fixed(rate)})
				break
			}
		}
		for _, r := range s.stuck {
			if r.Key == it.Key && applies(ev.Namespace, r.Namespace) && it.Value.Num == prev.value && prev.repeats+1 >= r.Repeats {
				out = append(out, event.Tag{Analyzer: "stuck", Key: it.Key, Label: "stuck", Score: int64(prev.repeats+1) * event.ScoreScale})
				break
			}
		}
	}
	return out
}

// Apply implements Analyzer: every entry, in block order, updates its
// device's last values.
func (s *Series) Apply(b Block) {
	for _, en := range b.Entries {
		ev := &en.Event
		if _, ok := s.lastSeen[ev.DeviceUID]; ok || len(s.lastSeen) < maxTracked {
			if ev.Timestamp > s.lastSeen[ev.DeviceUID] {
				s.lastSeen[ev.DeviceUID] = ev.Timestamp
			}
		}
		for _, it := range ev.Items {
			if it.Value.Kind != event.KindNumber || !s.watches(ev.Namespace, it.Key) {
				continue
			}
			k := seriesKey{ev.DeviceUID, it.Key}
			prev, ok := s.values[k]
			if !ok && len(s.values) >= maxTracked {
				continue
			}
			next := lastValue{ts: ev.Timestamp, value: it.Value.Num, repeats: 1}
			if ok && prev.value == it.Value.Num {
				next.repeats = prev.repeats + 1
			}
			s.values[k] = next
		}
	}
}

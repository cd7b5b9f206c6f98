package analyze

import (
	"testing"

	"cissan/internal/event"
)

func reading(device string, ts int64, temp float64) *event.Entry {
	return &event.Entry{Event: event.Event{DeviceUID: device, Namespace: "a/b", Timestamp: ts,
		Items: []event.Item{{Key: "temperature", Value: num(temp)}, {Key: "label", Value: event.Value{Kind: event.KindString, Str: "x"}}}}}
}

func labels(tags []event.Tag) []string {
	var out []string
	for _, t := range tags {
		out = append(out, t.Analyzer+":"+t.Label)
	}
	return out
}

func TestSeriesRules(t *testing.T) {
	s := NewSeries(
		[]RateRule{{Key: "temperature", MaxPerSecond: 1}},
		[]StuckRule{{Key: "temperature", Repeats: 3}},
		[]HeartbeatRule{{MaxGapMs: 60_000}},
	)
	// No history yet: nothing to compare with.
	if tags := s.Tags(&reading("d1", 1000, 20).Event); len(tags) != 0 {
		t.Fatalf("first reading tagged %v", labels(tags))
	}
	s.Apply(Block{Height: 0, Entries: []*event.Entry{reading("d1", 1000, 20)}})
	steps := []struct {
		ts   int64
		temp float64
		want []string
	}{
		{11_000, 25, nil}, // 0.5 per second
		{12_000, 30, []string{"rate:rate_of_change"}}, // 5 per second
		{13_000, 30, nil},                                    // second time
		{14_000, 30, []string{"stuck:stuck"}},                // third time
		{200_000, 30.5, []string{"heartbeat:heartbeat_gap"}}, // silent for three minutes
	}
	for h, st := range steps {
		e := reading("d1", st.ts, st.temp)
		got := labels(s.Tags(&e.Event))
		if len(got) != len(st.want) || (len(got) > 0 && got[0] != st.want[0]) {
			t.Fatalf("step %d (%d ms, %.1f): tags %v, want %v", h, st.ts, st.temp, got, st.want)
		}
		s.Apply(Block{Height: uint64(h + 1), Entries: []*event.Entry{e}})
	}
	// Another device's history is its own.
	if tags := s.Tags(&reading("d2", 500_000, 99).Event); len(tags) != 0 {
		t.Fatalf("a new device was tagged %v", labels(tags))
	}
}

func TestConfigRoundTrip(t *testing.T) {
	raw := []byte(`{"range":[{"key":"temperature","min":-40,"max":85}],"rate":[{"key":"temperature","max_per_second":2}],` +
		`"stuck":[{"namespace":"a/b","key":"temperature","repeats":10}],"heartbeat":[{"max_gap_ms":60000}]}`)
	c, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseConfig(c.Encode())
	if err != nil || string(again.Encode()) != string(c.Encode()) {
		t.Fatalf("round trip: %s vs %s (%v)", again.Encode(), c.Encode(), err)
	}
	set, err := c.Build()
	if err != nil || len(set) != 2 || set.Stateless() {
		t.Fatalf("Build = %v, %v; want range and series analyzers, stateful", set, err)
	}
	for _, bad := range []string{
		`{"rate":[{"key":"t","max_per_second":0}]}`,
		`{"stuck":[{"key":"t","repeats":1}]}`,
		`{"heartbeat":[{"max_gap_ms":-1}]}`,
		`{"range":[{"key":"","min":0,"max":1}]}`,
		`{"range":[]} {}`,
		`[]`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s) accepted a bad config", bad)
		}
	}
}

package analyze

import (
	"testing"

	"cissan/internal/event"
)

func num(f float64) event.Value { return event.Value{Kind: event.KindNumber, Num: f} }

func TestRangeTags(t *testing.T) {
	r := NewRange([]RangeRule{
		{Key: "temperature", Min: -40, Max: 85},
		{Namespace: "acme/freezers", Key: "temperature", Min: -30, Max: -10},
	})
	cases := []struct {
		name  string
		ns    string
		items []event.Item
		want  []event.Tag
	}{
		{"inside", "a/b", []event.Item{{Key: "temperature", Value: num(20)}}, nil},
		{"at the bounds", "a/b", []event.Item{{Key: "temperature", Value: num(85)}, {Key: "temperature", Value: num(-40)}}, nil},
		{"above", "a/b", []event.Item{{Key: "temperature", Value: num(86.5)}},
			[]event.Tag{{Analyzer: "range", Key: "temperature", Label: "out_of_range", Score: 1_500_000}}},
		{"below", "a/b", []event.Item{{Key: "temperature", Value: num(-41)}},
			[]event.Tag{{Analyzer: "range", Key: "temperature", Label: "out_of_range", Score: 1_000_000}}},
		{"namespace rule applies first", "acme/freezers", []event.Item{{Key: "temperature", Value: num(0)}},
			[]event.Tag{{Analyzer: "range", Key: "temperature", Label: "out_of_range", Score: 10_000_000}}},
		{"array takes the worst element", "a/b", []event.Item{{Key: "temperature", Value: event.Value{Kind: event.KindArray, Array: []event.Value{num(90), num(100), num(0)}}}},
			[]event.Tag{{Analyzer: "range", Key: "temperature", Label: "out_of_range", Score: 15_000_000}}},
		{"other keys and kinds ignored", "a/b", []event.Item{{Key: "humidity", Value: num(500)}, {Key: "temperature", Value: event.Value{Kind: event.KindString, Str: "hot"}}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Tags(&event.Event{Namespace: c.ns, Items: c.items})
			if !Equal(got, c.want) {
				t.Fatalf("Tags = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseRangeRule(t *testing.T) {
	good := map[string]RangeRule{
		"temperature=-40:85":              {Key: "temperature", Min: -40, Max: 85},
		"acme/freezers:temperature=-30:0": {Namespace: "acme/freezers", Key: "temperature", Min: -30, Max: 0},
		"a:b=1:2":                         {Key: "a:b", Min: 1, Max: 2},
	}
	for in, want := range good {
		got, err := ParseRangeRule(in)
		if err != nil || got != want {
			t.Errorf("ParseRangeRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "temperature", "temperature=1", "=1:2", "t=x:2", "t=1:y", "t=5:1", "t=NaN:1"} {
		if _, err := ParseRangeRule(in); err == nil {
			t.Errorf("ParseRangeRule(%q) accepted a bad rule", in)
		}
	}
}

func TestSetIsStatelessOnlyWhenEveryAnalyzerIs(t *testing.T) {
	if !(Set{NewRange(nil)}).Stateless() {
		t.Fatal("a set of range analyzers should be stateless")
	}
	if (Set{NewRange(nil), stateful{}}).Stateless() {
		t.Fatal("a set with a stateful analyzer claimed to be stateless")
	}
}

type stateful struct{}

func (stateful) Name() string                  { return "stateful" }
func (stateful) Tags(*event.Event) []event.Tag { return nil }
func (stateful) Apply(Block)                   {}

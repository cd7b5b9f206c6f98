package metrics_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cissan/internal/metrics"
)

// scrape serves m's handler and returns the text exposition.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

// wantLines fails unless every line is in the exposition, exactly.
func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("missing line %q", l)
		}
	}
}

func TestRecordAndScrape(t *testing.T) {
	m := metrics.New()
	h1, h2 := m.Hub("hub-1"), m.Hub("hub-2")
	if m.Hub("hub-1") != h1 {
		t.Error("Hub returns a new recorder for the same id")
	}
	h1.Accepted(3)
	h1.Accepted(2)
	h1.Accepted(0)
	h1.Rejected(metrics.ReasonBadPayload)
	h1.Rejected(metrics.ReasonBadPayload)
	h1.Rejected(metrics.ReasonUIDConflict)
	h1.Rejected("something new")
	h1.CommitDuration(3 * time.Millisecond)
	h1.Validated(metrics.VerdictAccept)
	h1.Validated("bogus") // not counted
	h1.ValidateDuration(20 * time.Millisecond)
	h2.Validated(metrics.VerdictReject)
	m.Master().MintDuration(2 * time.Second)
	m.Master().MintDuration(time.Millisecond)

	height := 7.0
	m.GaugeFunc("cissan_chain_height", "Blocks stored.", map[string]string{"node": "master"}, func() float64 { return height })
	m.GaugeFunc("cissan_chain_height", "Blocks stored.", map[string]string{"node": "hub-1"}, func() float64 { return 6 })
	m.CounterFunc("cissan_tagged_events_total", "Tagged events.", nil, func() float64 { return 4 })
	m.GaugeMap("cissan_devices", "Devices by status.", "status", func() (map[string]float64, error) {
		return map[string]float64{"active": 2, "revoked": 1}, nil
	})

	text := scrape(t, m)
	wantLines(t, text,
		`cissan_events_accepted_total{node="hub-1"} 5`,
		`cissan_events_accepted_total{node="hub-2"} 0`,
		`cissan_events_rejected_total{node="hub-1",reason="bad_payload"} 2`,
		`cissan_events_rejected_total{node="hub-1",reason="uid_conflict"} 1`,
		`cissan_events_rejected_total{node="hub-1",reason="other"} 1`,
		`cissan_events_rejected_total{node="hub-1",reason="not_authorized"} 0`,
		`cissan_events_rejected_total{node="hub-2",reason="shutting_down"} 0`,
		`cissan_pool_commit_seconds_bucket{node="hub-1",le="0.0025"} 0`,
		`cissan_pool_commit_seconds_bucket{node="hub-1",le="0.005"} 1`,
		`cissan_pool_commit_seconds_count{node="hub-1"} 1`,
		`cissan_blocks_validated_total{node="hub-1",verdict="accept"} 1`,
		`cissan_blocks_validated_total{node="hub-1",verdict="reject"} 0`,
		`cissan_blocks_validated_total{node="hub-2",verdict="reject"} 1`,
		`cissan_block_validate_seconds_count{node="hub-1"} 1`,
		`cissan_block_validate_seconds_sum{node="hub-1"} 0.02`,
		`cissan_mint_seconds_count 2`,
		`cissan_mint_seconds_sum 2.001`,
		`cissan_mint_seconds_bucket{le="1"} 1`,
		`cissan_mint_seconds_bucket{le="+Inf"} 2`,
		`# TYPE cissan_chain_height gauge`,
		`cissan_chain_height{node="master"} 7`,
		`cissan_chain_height{node="hub-1"} 6`,
		`# TYPE cissan_tagged_events_total counter`,
		`cissan_tagged_events_total 4`,
		`# TYPE cissan_devices gauge`,
		`cissan_devices{status="active"} 2`,
		`cissan_devices{status="revoked"} 1`,
	)
	if !strings.Contains(text, "go_goroutines ") {
		t.Error("Go runtime collector missing")
	}
	if strings.Contains(text, `verdict="bogus"`) {
		t.Error("an unknown verdict made a series")
	}

	// Gauges are read at scrape time.
	height = 8
	if !strings.Contains(scrape(t, m), `cissan_chain_height{node="master"} 8`+"\n") {
		t.Error("gauge not read again at scrape")
	}
}

// A nil recorder, as a hub or master built without metrics has, is a no-op.
func TestNilRecorders(t *testing.T) {
	var m *metrics.Metrics
	h, ms := m.Hub("hub-1"), m.Master()
	if h != nil || ms != nil {
		t.Fatal("nil *Metrics gave a recorder")
	}
	h.Accepted(1)
	h.Rejected(metrics.ReasonBadPayload)
	h.CommitDuration(time.Millisecond)
	h.Validated(metrics.VerdictAccept)
	h.ValidateDuration(time.Millisecond)
	ms.MintDuration(time.Millisecond)
}

// A failing collector leaves the rest of the scrape intact.
func TestGaugeMapError(t *testing.T) {
	m := metrics.New()
	m.Hub("hub-1").Accepted(1)
	m.GaugeMap("cissan_devices", "Devices by status.", "status", func() (map[string]float64, error) {
		return nil, errors.New("registry closed")
	})
	text := scrape(t, m)
	wantLines(t, text, `cissan_events_accepted_total{node="hub-1"} 1`)
	if strings.Contains(text, "cissan_devices{") {
		t.Error("a failed gauge reported values")
	}
}

// The registry is not the global one: two Metrics do not collide.
func TestIndependentRegistries(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Hub("hub-1").Accepted(2)
	b.Hub("hub-1").Accepted(5)
	wantLines(t, scrape(t, a), `cissan_events_accepted_total{node="hub-1"} 2`)
	wantLines(t, scrape(t, b), `cissan_events_accepted_total{node="hub-1"} 5`)
	n, err := testutil.GatherAndCount(a.Registry(), "cissan_events_accepted_total")
	if err != nil || n != 1 {
		t.Errorf("GatherAndCount = %d, %v; want 1 series", n, err)
	}
}

// The Grafana dashboard in docs parses, and every cissan_ metric its
// queries name is one this network exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		SchemaVersion int    `json:"schemaVersion"`
		Title         string `json:"title"`
		UID           string `json:"uid"`
		Panels        []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				Type, UID string
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr, RefID string
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("inputs = %+v, want one prometheus datasource DS_PROMETHEUS", d.Inputs)
	}
	if d.SchemaVersion < 36 || d.Title == "" || d.UID == "" {
		t.Errorf("schemaVersion %d, title %q, uid %q", d.SchemaVersion, d.Title, d.UID)
	}
	exported := map[string]bool{
		"cissan_events_accepted_total": true, "cissan_events_rejected_total": true,
		"cissan_events_retransmits_total": true, "cissan_events_resubmitted_total": true,
		"cissan_events_refused_by_master_total": true, "cissan_pool_events": true,
		"cissan_chain_height": true, "cissan_final_height": true, "cissan_block_validation_lag_blocks": true,
		"cissan_blocks_validated_total": true, "cissan_pool_commit_seconds_bucket": true,
		"cissan_mint_seconds_bucket": true, "cissan_block_validate_seconds_bucket": true,
		"cissan_tagged_events_total": true, "cissan_devices": true,
		// internal/anchor, on a master that anchors on Bitcoin:
		"cissan_anchor_balance_sats": true, "cissan_anchor_funds_days_left": true, "cissan_anchor_low_funds": true,
		"cissan_anchor_error": true, "cissan_anchor_confirmed_height": true,
	}
	name := regexp.MustCompile(`cissan_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %+v, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no size", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				if !exported[n] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, n)
				}
				used[n] = true
			}
		}
	}
	for _, n := range []string{"cissan_events_accepted_total", "cissan_events_rejected_total", "cissan_pool_events",
		"cissan_chain_height", "cissan_block_validation_lag_blocks", "cissan_final_height",
		"cissan_pool_commit_seconds_bucket", "cissan_mint_seconds_bucket", "cissan_block_validate_seconds_bucket",
		"cissan_tagged_events_total", "cissan_devices"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

func TestMasterRefusals(t *testing.T) {
	m := metrics.New()
	m.Master().Refused("batch", "bad_signature")
	m.Master().Refused("batch", "bad_signature")
	m.Master().Refused("validation", "unknown_hub")
	var nilMaster *metrics.MasterMetrics
	nilMaster.Refused("batch", "malformed") // a nil recorder records nothing, and does not panic
	want := `
# HELP cissan_bus_messages_refused_total Messages the master refused, by kind (batch, validation) and reason (unknown_hub, bad_signature, malformed, wrong_block).
# TYPE cissan_bus_messages_refused_total counter
cissan_bus_messages_refused_total{kind="batch",reason="bad_signature"} 2
cissan_bus_messages_refused_total{kind="validation",reason="unknown_hub"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cissan_bus_messages_refused_total"); err != nil {
		t.Fatal(err)
	}
}

package local_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// scrapeMetrics fetches GET /metrics without a token and returns every
// sample as `name{labels}` -> value, and the raw text.
func (tn *testNet) scrapeMetrics() (map[string]float64, string) {
	tn.t.Helper()
	resp, err := http.Get(tn.APIURL + "/metrics")
	if err != nil {
		tn.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tn.t.Fatalf("GET /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		tn.t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		tn.t.Errorf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tn.t.Fatalf("GET /metrics: bad line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, string(body)
}

func TestMetrics(t *testing.T) {
	tn := startNet(t, t.TempDir(), 2)
	const ns = "acme/metrics-plant"
	tok := tn.register("dev-metrics", ns)
	d := tn.dial(0, "dev-metrics", ns, tok)

	uids := []string{"m-1", "m-2", "m-3"}
	first := seedEvent(uids[0], "dev-metrics", ns, 20)
	publishOK(t, d, first)
	for i, uid := range uids[1:] {
		publishOK(t, d, seedEvent(uid, "dev-metrics", ns, 21+float64(i)))
	}
	publishOK(t, d, first) // a retransmit: acknowledged, not counted again
	if r := publish(t, d, topic("dev-metrics"), []byte(`{"uid":"m-bad","timestamp":1,"items":[`)); r.Code != 0x99 {
		t.Fatalf("malformed event: PUBACK 0x%02x %q, want 0x99", r.Code, r.Reason)
	}
	for _, uid := range uids {
		tn.waitFinal(uid)
	}
	if r := publish(t, d, topic("dev-metrics"), mustJSON(t, seedEvent("m-2", "dev-metrics", ns, 99))); r.Code != 0x83 {
		t.Fatalf("event under a used uid: PUBACK 0x%02x %q, want 0x83", r.Code, r.Reason)
	}

	m, text := tn.scrapeMetrics()
	want := map[string]float64{
		`cissan_events_accepted_total{node="hub-1"}`:                         3,
		`cissan_events_accepted_total{node="hub-2"}`:                         0,
		`cissan_events_retransmits_total{node="hub-1"}`:                      1,
		`cissan_events_rejected_total{node="hub-1",reason="bad_payload"}`:    1,
		`cissan_events_rejected_total{node="hub-1",reason="uid_conflict"}`:   1,
		`cissan_events_rejected_total{node="hub-1",reason="not_authorized"}`: 0,
		`cissan_events_rejected_total{node="hub-2",reason="bad_payload"}`:    0,
		`cissan_events_refused_by_master_total{node="hub-1"}`:                0,
		`cissan_blocks_validated_total{node="hub-1",verdict="reject"}`:       0,
		`cissan_devices{status="active"}`:                                    1,
		`cissan_devices{status="revoked"}`:                                   0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("no sample %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	positive := []string{
		`cissan_chain_height{node="master"}`,
		`cissan_chain_height{node="hub-1"}`,
		`cissan_chain_height{node="hub-2"}`,
		`cissan_final_height`,
		`cissan_blocks_validated_total{node="hub-1",verdict="accept"}`,
		`cissan_blocks_validated_total{node="hub-2",verdict="accept"}`,
		`cissan_pool_commit_seconds_count{node="hub-1"}`,
		`cissan_mint_seconds_count`,
		`cissan_block_validate_seconds_count{node="hub-1"}`,
		`cissan_block_validate_seconds_count{node="hub-2"}`,
	}
	for _, k := range positive {
		if m[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, m[k])
		}
	}
	for _, k := range []string{
		`cissan_pool_events{node="master"}`, `cissan_pool_events{node="hub-1"}`,
		`cissan_block_validation_lag_blocks{node="hub-1"}`, `cissan_block_validation_lag_blocks{node="hub-2"}`,
		`cissan_tagged_events_total`,
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("no sample %s", k)
		}
	}
	if m[`cissan_final_height`] > m[`cissan_chain_height{node="master"}`] {
		t.Errorf("final height %v above the master's height %v", m[`cissan_final_height`], m[`cissan_chain_height{node="master"}`])
	}
	// Public: no event contents, device ids or namespaces.
	for _, secret := range []string{"dev-metrics", ns, "m-1", "temperature"} {
		if strings.Contains(text, secret) {
			t.Errorf("GET /metrics shows %q", secret)
		}
	}
}

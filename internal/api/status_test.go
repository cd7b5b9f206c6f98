package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
)

// Anonymous visitors and auditors see the nodes' state but not where they
// listen; the operator sees the addresses.
func TestStatusHidesAddressesFromAllButTheOperator(t *testing.T) {
	n, err := local.Start(t.Context(), local.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 2,
		BlockInterval: 100 * time.Millisecond, Limits: event.DefaultLimits(), Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rt, err := n.Registry.CreateReadToken(t.Context(), "auditor", []string{"acme/plant"})
	if err != nil {
		t.Fatal(err)
	}
	status := func(token string) (string, []map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, n.APIURL+"/v1/status", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /v1/status: %d %v", resp.StatusCode, err)
		}
		var body struct {
			Nodes []map[string]any `json:"nodes"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		return string(raw), body.Nodes
	}
	addrs := n.MQTTAddrs()
	for who, tok := range map[string]string{"anonymous": "", "read token": rt.Token, "wrong token": "cso_wrong"} {
		raw, nodes := status(tok)
		if len(nodes) != 3 {
			t.Fatalf("%s: %d nodes, want 3", who, len(nodes))
		}
		for _, a := range addrs {
			_, port, _ := strings.Cut(a, ":")
			if strings.Contains(raw, a) || strings.Contains(raw, ":"+port+`"`) {
				t.Errorf("%s: status shows the MQTT address %s: %s", who, a, raw)
			}
		}
		for _, nd := range nodes {
			if _, ok := nd["mqtt"]; ok {
				t.Errorf("%s: node %v has an mqtt member", who, nd["id"])
			}
			if nd["height"] == nil {
				t.Errorf("%s: node %v lost its height", who, nd["id"])
			}
		}
	}
	_, nodes := status(n.Token)
	for i, nd := range nodes[1:] {
		if nd["mqtt"] != addrs[i] {
			t.Errorf("operator: hub %v mqtt = %v, want %s", nd["id"], nd["mqtt"], addrs[i])
		}
	}
}

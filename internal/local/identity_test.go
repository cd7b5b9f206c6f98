package local_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cissan/internal/api"
	"cissan/internal/sim"
)

// TestAnotherDevicesUIDsCannotDropEvents: two devices of two namespaces,
// each on its own hub, publish the same uids back to back. Every event is
// acknowledged, and every acknowledged event is logged and final: an
// event's identity is its uid within its device, so neither device can
// have the other's events refused by using their uids first.
func TestAnotherDevicesUIDsCannotDropEvents(t *testing.T) {
	dir := t.TempDir()
	tn := startNet(t, dir, 2)
	a := tn.dial(0, "cd1", "acme/weather", tn.register("cd1", "acme/weather"))
	b := tn.dial(1, "cd10", "other/grp", tn.register("cd10", "other/grp"))
	const n = 100
	race := func(i int) {
		uid := fmt.Sprintf("shared-%03d", i)
		var wg sync.WaitGroup
		for _, d := range []*sim.Device{a, b} {
			wg.Go(func() { publishOK(t, d, seedEvent(uid, d.UID, d.Namespace, float64(i))) })
		}
		wg.Wait()
	}
	for i := range n {
		race(i)
	}
	for i := range n {
		uid := fmt.Sprintf("shared-%03d", i)
		for _, d := range []*sim.Device{a, b} {
			ev := tn.waitFinalOf(uid, d.UID, 0)
			if ev.Event.DeviceUID != d.UID || ev.Event.Namespace != d.Namespace || ev.Version != 1 {
				t.Fatalf("%s of %s: got %+v", uid, d.UID, ev)
			}
		}
	}
	// Without a device the uid names two events: the API says which.
	var amb struct {
		Error      string
		Candidates []api.CandidateJSON
	}
	if code := tn.getAny("/v1/events/shared-007", &amb); code != http.StatusMultipleChoices || len(amb.Candidates) != 2 ||
		amb.Candidates[0].DeviceUID != "cd1" || amb.Candidates[1].DeviceUID != "cd10" {
		t.Fatalf("GET /v1/events/shared-007: %d %+v, want 300 naming cd1 and cd10", code, amb)
	}
	// So does the CLI; with --device it fetches that event's proof, which
	// verifies.
	tokenFile := filepath.Join(dir, "admin.token")
	if out, err := tn.cli("proof", "--api", tn.APIURL, "--token-file", tokenFile, "shared-007"); err == nil || !strings.Contains(err.Error(), "--device") {
		t.Fatalf("cissan proof of an ambiguous uid: %v\n%s", err, out)
	}
	bundle := filepath.Join(dir, "cd10.proof.json")
	if out, err := tn.cli("proof", "--api", tn.APIURL, "--token-file", tokenFile, "--device", "cd10", "-o", bundle, "shared-007"); err != nil {
		t.Fatalf("cissan proof --device cd10: %v\n%s", err, out)
	}
	if out, err := tn.cli("verify", "proof", "--network", filepath.Join(dir, "network.json"), bundle); err != nil || !strings.Contains(out, "cd10") {
		t.Fatalf("verify proof: %v\n%s", err, out)
	}
	for _, h := range tn.Hubs {
		if r := h.Stats().Refused.Load(); r != 0 {
			t.Errorf("%s: the master refused %d submissions", h.ID(), r)
		}
	}
	if got := tn.eventCount(); got != fmt.Sprint(2*n) {
		t.Fatalf("the chain holds %s events, want %d", got, 2*n)
	}
	tn.verifyData()
}

// TestOneDeviceTwoContentsThroughTwoHubs: one device sends other content
// under one uid to each hub at once. Neither hub can see the other's, so
// both may acknowledge, and then both versions are logged: nothing
// acknowledged goes missing. A hub that already holds one version in its
// chain refuses the other with 0x83, before acknowledging it. The same
// content through both hubs is logged once.
func TestOneDeviceTwoContentsThroughTwoHubs(t *testing.T) {
	dir := t.TempDir()
	tn := startNet(t, dir, 2)
	tok := tn.register("twin", "acme/lab")
	devs := []*sim.Device{tn.dial(0, "twin", "acme/lab", tok), tn.dial(1, "twin", "acme/lab", tok)}
	const n = 50
	type sent struct {
		uid   string
		value float64
	}
	var mu sync.Mutex
	var acked []sent
	refused := 0
	for i := range n {
		var wg sync.WaitGroup
		for hub, d := range devs {
			wg.Go(func() {
				s := sent{fmt.Sprintf("twin-%03d", i), float64(100*hub + i)}
				r := publish(t, d, topic("twin"), mustJSON(t, seedEvent(s.uid, "twin", "acme/lab", s.value)))
				mu.Lock()
				defer mu.Unlock()
				switch r.Code {
				case 0:
					acked = append(acked, s)
				case 0x83:
					refused++
				default:
					t.Errorf("%s to hub %d: PUBACK 0x%02x %q, want 0 or 0x83", s.uid, hub, r.Code, r.Reason)
				}
			})
		}
		wg.Wait()
	}
	// The same content through both hubs: one event.
	same := seedEvent("twin-same", "twin", "acme/lab", 7)
	for _, d := range devs {
		publishOK(t, d, same)
	}
	tn.waitFinalOf("twin-same", "twin", 0)
	if len(acked)+refused != 2*n {
		t.Fatalf("%d acknowledged and %d refused of %d", len(acked), refused, 2*n)
	}
	versions := 0
	for _, s := range acked {
		// Each acknowledged content is one of the uid's versions.
		var found bool
		for v := 1; v <= 2 && !found; v++ {
			ev, code := tn.eventOf(s.uid, "twin", v)
			if code == http.StatusOK && ev.Event.Items[0].Value.Num == s.value {
				found = true
				versions = max(versions, v)
				if ev.Status != "final" {
					ev = tn.waitFinalOf(s.uid, "twin", v)
				}
			}
		}
		if !found {
			t.Fatalf("%s with temperature %v was acknowledged and is not logged", s.uid, s.value)
		}
	}
	t.Logf("%d of %d contents acknowledged (%d refused with 0x83); most versions of one uid: %d", len(acked), 2*n, refused, versions)
	if len(acked) <= n {
		t.Fatalf("only %d of %d racing contents acknowledged: the race was never run", len(acked), 2*n)
	}
	if want := fmt.Sprint(len(acked) + 1); tn.eventCount() != want {
		t.Fatalf("the chain holds %s events, want %s (each acknowledged content once, twin-same once)", tn.eventCount(), want)
	}
	tn.verifyData()
}

// eventOf is event for the event of uid from device (version 0: the only
// one).
func (tn *testNet) eventOf(uid, device string, version int) (api.EventJSON, int) {
	tn.t.Helper()
	q := url.Values{"device": {device}}
	if version > 0 {
		q.Set("version", fmt.Sprint(version))
	}
	var ev api.EventJSON
	code := tn.get("/v1/events/"+url.PathEscape(uid)+"?"+q.Encode(), &ev)
	return ev, code
}

// waitFinalOf is waitFinal for the event of uid from device.
func (tn *testNet) waitFinalOf(uid, device string, version int) api.EventJSON {
	tn.t.Helper()
	var ev api.EventJSON
	tn.waitUntil(fmt.Sprintf("event %s of %s final", uid, device), func() bool {
		var code int
		ev, code = tn.eventOf(uid, device, version)
		return code == http.StatusOK && ev.Status == "final"
	})
	return ev
}

// getAny is get that decodes the answer whatever its status.
func (tn *testNet) getAny(path string, out any) int {
	tn.t.Helper()
	code, body := tn.fetch(path)
	if err := json.Unmarshal(body, out); err != nil {
		tn.t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
	return code
}

// verifyData closes the network and runs `cissan verify data` on its
// data dir.
func (tn *testNet) verifyData() {
	tn.t.Helper()
	if err := tn.Close(); err != nil {
		tn.t.Fatal(err)
	}
	if out, err := tn.cli("verify", "data", "--data-dir", tn.dir); err != nil {
		tn.t.Fatalf("verify data: %v\n%s", err, out)
	}
}

// waitUntil polls ok until it holds, and fails the test after
// finalDeadline.
func (tn *testNet) waitUntil(what string, ok func() bool) {
	tn.t.Helper()
	for deadline := time.Now().Add(finalDeadline); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tn.t.Fatalf("%s: not after %v", what, finalDeadline)
		}
	}
}

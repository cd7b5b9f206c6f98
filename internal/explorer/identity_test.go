package explorer_test

import (
	"strings"
	"testing"
	"time"
)

// An event is its uid within its device: the event page of a uid that two
// devices used lists both, each linked; with ?device= it shows that one,
// and its proof links name the device, so they never become ambiguous.
func TestEventPageOfASharedUID(t *testing.T) {
	tn := startNet(t, 1)
	a, b := tn.device("dev-a", "acme/one"), tn.device("dev-b", "acme/two")
	now := time.Now()
	publish(t, a, "shared", now, "temperature", 1.5)
	publish(t, b, "shared", now, "temperature", 2.5)
	waitFor(t, "both events final", 15*time.Second, func() bool {
		found, err := tn.Master.Ledger().Find("shared", "", 0)
		if err != nil || len(found) != 2 {
			return false
		}
		for _, f := range found {
			if ok, _ := tn.Master.Ledger().Final(f.At.Height); !ok {
				return false
			}
		}
		return true
	})
	code, body := tn.get("/events/shared", tn.Token)
	if code != 300 || !strings.Contains(body, `href="/events/shared?device=dev-a&amp;version=1"`) || !strings.Contains(body, `href="/events/shared?device=dev-b&amp;version=1"`) {
		t.Fatalf("event page of a uid two devices used: %d\n%s", code, body)
	}
	code, body = tn.get("/events/shared?device=dev-b", tn.Token)
	if code != 200 || !strings.Contains(body, "2.5") || strings.Contains(body, "1.5") ||
		!strings.Contains(body, `href="/v1/events/shared/proof?device=dev-b&amp;version=1"`) {
		t.Fatalf("event page of dev-b's event: %d\n%s", code, body)
	}
	if code, _ := tn.get("/events/shared?device=dev-c", tn.Token); code != 404 {
		t.Fatalf("event page of a device that never used the uid: %d, want 404", code)
	}
	// A read token sees only its namespace's event, and learns nothing of
	// the other: the uid names one event for it, in the pages and the API.
	nt, err := tn.Registry.CreateReadToken(t.Context(), "auditor", []string{"acme/two"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/events/shared", "/v1/events/shared"} {
		code, body := tn.get(path, nt.Token)
		if code != 200 || !strings.Contains(body, "dev-b") || strings.Contains(body, "dev-a") {
			t.Fatalf("%s with a read token for acme/two: %d\n%s", path, code, body)
		}
	}
	if code, body := tn.get("/v1/events/shared?device=dev-a", nt.Token); code != 404 || strings.Contains(body, "acme/one") {
		t.Fatalf("another namespace's event with a read token: %d %s, want 404", code, body)
	}
}

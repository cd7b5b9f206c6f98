package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cissan/internal/bus"
	"cissan/internal/registry"
	"cissan/internal/sim"
)

// amqpURL returns the RabbitMQ the tests use, skipping (or, under CI,
// failing) when none answers.
func amqpURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CISSAN_TEST_AMQP_URL")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", 2*time.Second)
	if err != nil && !strings.Contains(u, "@127.0.0.1:5672") {
		return u // another broker: let the nodes report
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it): %v", err)
		}
		t.Skipf("RabbitMQ is not running on 127.0.0.1:5672: %v", err)
	}
	c.Close()
	return u
}

// roleNet is registry, master and hubs as separate processes over RabbitMQ,
// laid out as a `cissan up` data dir so that `cissan verify data` reads it.
type roleNet struct {
	t                      testing.TB
	bin, root, logs        string
	amqp, prefix           string
	registryAPI, masterAPI string
	masterToken            string
	hubIDs                 []string
	hubMQTT, hubAPI        []string
	hubArgs                [][]string
	masterArgs             []string
	registryArgs           []string
	procs                  map[string]*proc
	runs                   int
}

func startRoleNet(t testing.TB, hubs int) *roleNet {
	t.Helper()
	n := &roleNet{t: t, bin: cissanBin(t), root: filepath.Join(t.TempDir(), "data"), logs: t.TempDir(),
		amqp: amqpURL(t), procs: map[string]*proc{}}
	var r [6]byte
	rand.Read(r[:])
	n.prefix = "cissan-test-" + hex.EncodeToString(r[:])
	t.Cleanup(func() {
		if err := bus.DeleteTopology(n.amqp, n.prefix, n.hubIDs); err != nil {
			t.Errorf("clean up RabbitMQ: %v", err)
		}
	})
	port := func() string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }

	regAddr := port()
	n.registryAPI = "http://" + regAddr

	var hubFlags []string
	for i := 1; i <= hubs; i++ {
		id := fmt.Sprintf("hub-%d", i)
		out, err := exec.Command(n.bin, "hub", "--id", id, "--data-dir", filepath.Join(n.root, id), "--print-key").Output()
		if err != nil {
			t.Fatalf("hub --print-key: %v", err)
		}
		hubFlags = append(hubFlags, "--hub", strings.TrimSpace(string(out)))
		n.hubIDs = append(n.hubIDs, id)
	}
	masterAddr := port()
	n.masterAPI = "http://" + masterAddr
	n.masterArgs = append([]string{"master", "--data-dir", filepath.Join(n.root, "master"), "--http-addr", masterAddr,
		"--amqp-url", n.amqp, "--amqp-prefix", n.prefix, "--block-interval", "200ms",
		"--registry-url", n.registryAPI}, hubFlags...)
	n.start("master", n.masterArgs...)
	waitReady(t, n.procs["master"], n.masterAPI)
	tok, err := os.ReadFile(filepath.Join(n.root, "master", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	n.masterToken = strings.TrimSpace(string(tok))
	// verify data reads network.json at the top of the data dir.
	nj, err := os.ReadFile(filepath.Join(n.root, "master", "network.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.root, "network.json"), nj, 0o644); err != nil {
		t.Fatal(err)
	}
	// The registry knows the nodes' keys from network.json: each hub, and
	// the master, signs its requests as itself.
	n.registryArgs = []string{"registry", "--data-dir", filepath.Join(n.root, "registry"), "--http-addr", regAddr,
		"--amqp-url", n.amqp, "--amqp-prefix", n.prefix, "--network", filepath.Join(n.root, "network.json")}
	n.start("registry", n.registryArgs...)
	waitHTTP(t, n.procs["registry"], n.registryAPI+"/v1/devices")

	for _, id := range n.hubIDs {
		mqtt, api := port(), port()
		n.hubMQTT = append(n.hubMQTT, mqtt)
		n.hubAPI = append(n.hubAPI, "http://"+api)
		args := []string{"hub", "--id", id, "--data-dir", filepath.Join(n.root, id), "--network", filepath.Join(n.root, "network.json"),
			"--amqp-url", n.amqp, "--amqp-prefix", n.prefix, "--registry-url", n.registryAPI,
			"--mqtt-addr", mqtt, "--http-addr", api}
		n.hubArgs = append(n.hubArgs, args)
		n.start(id, args...)
		waitReady(t, n.procs[id], "http://"+api)
	}
	return n
}

func (n *roleNet) start(name string, args ...string) {
	n.runs++
	n.procs[name] = startProc(n.t, n.bin, filepath.Join(n.logs, fmt.Sprintf("%02d-%s.stderr", n.runs, name)), args...)
}

// waitHTTP waits until url answers at all (any status).
func waitHTTP(t testing.TB, p *proc, url string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p.exited() {
			t.Fatalf("process exited before it was ready: %v\nstderr:\n%s", p.err, p.tail())
		}
		if resp, err := httpc.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s did not answer within 30s\nstderr:\n%s", url, p.tail())
}

// devicesOn registers a device and connects it to hub i.
func (n *roleNet) devicesOn(uid string, i int) *sim.Device {
	n.t.Helper()
	tok, err := os.ReadFile(filepath.Join(n.root, "registry", "admin.token"))
	if err != nil {
		n.t.Fatal(err)
	}
	reg := &registry.Client{BaseURL: n.registryAPI, Token: strings.TrimSpace(string(tok))}
	_, dt, err := reg.Add(context.Background(), "fleet/site", uid)
	if err != nil {
		n.t.Fatal(err)
	}
	d, err := sim.Dial(context.Background(), n.hubMQTT[i], uid, "fleet/site", dt)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { d.Close() })
	return d
}

// devices registers count devices and connects them round robin to the hubs.
func (n *roleNet) devices(count int) []*sim.Device {
	n.t.Helper()
	var devs []*sim.Device
	for i := 0; i < count; i++ {
		devs = append(devs, n.devicesOn(fmt.Sprintf("dev-%d", i), i%len(n.hubMQTT)))
	}
	return devs
}

// sameChain waits until every hub has the master's chain and checks that
// every node holds the very same block at every height.
func (n *roleNet) sameChain() uint64 {
	n.t.Helper()
	var status struct {
		Height uint64 `json:"height"`
	}
	if _, err := getJSON(n.masterAPI, n.masterToken, "/v1/status", &status); err != nil {
		n.t.Fatal(err)
	}
	top := status.Height
	for i, api := range n.hubAPI {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var hs struct {
				Height uint64 `json:"height"`
			}
			if _, err := getJSON(api, "", "/v1/status", &hs); err == nil && hs.Height >= top {
				break
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("%s did not reach height %d\nstderr:\n%s", n.hubIDs[i], top, n.procs[n.hubIDs[i]].tail())
			}
		}
	}
	for h := uint64(0); h < top; h++ {
		var want struct {
			Hash string `json:"hash"`
		}
		if _, err := getJSON(n.masterAPI, "", fmt.Sprintf("/v1/blocks/%d", h), &want); err != nil {
			n.t.Fatal(err)
		}
		for i, api := range n.hubAPI {
			var got struct {
				Hash string `json:"hash"`
			}
			if _, err := getJSON(api, "", fmt.Sprintf("/v1/blocks/%d", h), &got); err != nil {
				n.t.Fatal(err)
			}
			if got.Hash != want.Hash {
				n.t.Fatalf("block %d: %s holds %s, the master %s", h, n.hubIDs[i], got.Hash, want.Hash)
			}
		}
	}
	return top
}

// finish stops every process, then checks that every acknowledged event
// is in the master's chain exactly once and that verify data passes on
// every node.
func (n *roleNet) finish(acked *ackSet) {
	t := n.t
	t.Helper()
	top := n.sameChain()
	for _, name := range append([]string{"registry"}, n.hubIDs...) {
		n.procs[name].stop(t)
	}
	n.procs["master"].stop(t)
	counts := countChainUIDs(t, filepath.Join(n.root, "master"))
	for uid, c := range counts {
		if c > 1 {
			t.Fatalf("event %s logged %d times", uid, c)
		}
	}
	for _, uid := range acked.list() {
		if counts[uid] != 1 {
			t.Fatalf("acknowledged event %s is not in the chain", uid)
		}
	}
	out, err := exec.Command(n.bin, "verify", "data", "--data-dir", n.root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("verify data: %v\n%s", err, out)
	}
	t.Logf("%d blocks identical on the master and %d hubs; %d events exactly once", top, len(n.hubIDs), len(counts))
}

// restart starts a stopped or killed node again with its arguments.
func (n *roleNet) restart(name string, args []string, api string) {
	n.t.Helper()
	n.start(name, args...)
	if name == "registry" {
		waitHTTP(n.t, n.procs[name], n.registryAPI+"/v1/devices")
		return
	}
	waitReady(n.t, n.procs[name], api)
}

// TestRolesOverRabbitMQ runs registry, master and three hubs as separate
// processes talking over RabbitMQ, with devices publishing to every hub at
// once, through one fault per subtest. Each ends with every acknowledged
// event final exactly once, the same chain on every node, and verify data
// passing on every node.
func TestRolesOverRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five processes")
	}
	faults := []struct {
		name  string
		fault func(n *roleNet, load func(time.Duration))
	}{
		{"no fault", func(n *roleNet, load func(time.Duration)) { load(1500 * time.Millisecond) }},
		{"hub killed under load", func(n *roleNet, load func(time.Duration)) {
			n.during(load, func() { n.procs["hub-2"].kill(n.t) })
			n.restart("hub-2", n.hubArgs[1], n.hubAPI[1])
		}},
		{"master killed under load", func(n *roleNet, load func(time.Duration)) {
			n.during(load, func() { n.procs["master"].kill(n.t) })
			n.restart("master", n.masterArgs, n.masterAPI)
		}},
		{"hub enrolled while running", func(n *roleNet, load func(time.Duration)) {
			load(700 * time.Millisecond)
			n.enrol("hub-4")
			load(700 * time.Millisecond)
		}},
		{"hub offline for many blocks", func(n *roleNet, load func(time.Duration)) {
			n.procs["hub-3"].stop(n.t)
			load(2 * time.Second) // hub-3's devices fail; the others go on
			n.restart("hub-3", n.hubArgs[2], n.hubAPI[2])
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			n := startRoleNet(t, 3)
			devs := n.devices(9)
			acked := &ackSet{uids: map[string]bool{}}
			var st loadStats
			start := time.Now()
			f.fault(n, func(d time.Duration) {
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				publishLoad(ctx, devs, 2, acked, &st).Wait()
			})
			waitFinal(t, n.procs["master"], n.masterAPI, n.masterToken, acked.list(), 60*time.Second)
			t.Logf("%d events acknowledged and final %v after the first publish", acked.len(), time.Since(start).Round(time.Millisecond))
			if st.refused > 0 {
				t.Fatalf("%d publishes refused, e.g. %s", st.refused, st.firstRefusal)
			}
			n.finish(acked)
		})
	}
}

// enrol makes a new hub's key, has the master enrol it, waits until the
// chain records it, exports network.json, and starts the hub with it.
func (n *roleNet) enrol(id string) {
	t := n.t
	t.Helper()
	out, err := exec.Command(n.bin, "hub", "--id", id, "--data-dir", filepath.Join(n.root, id), "--print-key").Output()
	if err != nil {
		t.Fatalf("hub --print-key: %v", err)
	}
	tokenFile := filepath.Join(n.root, "master", "admin.token")
	if out, err := exec.Command(n.bin, "enrol", "--api", n.masterAPI, "--token-file", tokenFile, "--hub", strings.TrimSpace(string(out))).CombinedOutput(); err != nil {
		t.Fatalf("enrol %s: %v\n%s", id, err, out)
	}
	var nj json.RawMessage
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var netw struct {
			Hubs []struct {
				ID string `json:"id"`
			} `json:"hubs"`
		}
		if _, err := getJSON(n.masterAPI, "", "/v1/network", &nj); err == nil && json.Unmarshal(nj, &netw) == nil && len(netw.Hubs) > len(n.hubIDs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chain did not record %s's enrolment", id)
		}
	}
	// Every node and verifier takes the network as the master exports it.
	if err := os.WriteFile(filepath.Join(n.root, "network.json"), nj, 0o644); err != nil {
		t.Fatal(err)
	}
	mqtt, api := "127.0.0.1:"+strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	args := []string{"hub", "--id", id, "--data-dir", filepath.Join(n.root, id), "--network", filepath.Join(n.root, "network.json"),
		"--amqp-url", n.amqp, "--amqp-prefix", n.prefix, "--registry-url", n.registryAPI,
		"--mqtt-addr", mqtt, "--http-addr", api}
	n.hubIDs = append(n.hubIDs, id)
	n.hubMQTT = append(n.hubMQTT, mqtt)
	n.hubAPI = append(n.hubAPI, "http://"+api)
	n.hubArgs = append(n.hubArgs, args)
	n.start(id, args...)
	waitReady(t, n.procs[id], "http://"+api)
	// A device on the new hub logs an event, which must become final.
	d := n.devicesOn("dev-on-"+id, len(n.hubIDs)-1)
	r, err := d.PublishEvent(context.Background(), time.Now())
	if err != nil || !r.OK() {
		t.Fatalf("publish through %s: %+v %v", id, r, err)
	}
	waitFinal(t, n.procs["master"], n.masterAPI, n.masterToken, []string{r.UID}, 30*time.Second)
}

// during runs fault while every device publishes, then lets the load go on
// a little longer.
func (n *roleNet) during(load func(time.Duration), fault func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		load(1500 * time.Millisecond)
	}()
	time.Sleep(700 * time.Millisecond)
	fault()
	<-done
}

// TestRabbitMQRestart stops and starts the broker's application under
// load (rabbitmqctl stop_app, start_app): every node reconnects, and no
// acknowledged event is lost or logged twice. It restarts the machine's
// shared broker, so .ci/run runs it alone, after the other tests.
func TestRabbitMQRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts RabbitMQ")
	}
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rabbitmqctl not found; .ci/run installs rabbitmq-server")
		}
		t.Skip("rabbitmqctl not found")
	}
	n := startRoleNet(t, 3)
	// Stopping the broker makes sends fail while it is away: the nodes
	// log that as an error, and retry.
	for _, p := range n.procs {
		p.expected = []string{"bus: unavailable"}
	}
	devs := n.devices(9)
	acked := &ackSet{uids: map[string]bool{}}
	var st loadStats
	load := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		publishLoad(ctx, devs, 2, acked, &st).Wait()
	}
	n.during(func(time.Duration) { load(3 * time.Second) }, func() {
		if out, err := exec.Command(ctl, "stop_app").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl stop_app: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
		if out, err := exec.Command(ctl, "start_app").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl start_app: %v\n%s", err, out)
		}
	})
	load(time.Second) // after the broker is back
	waitFinal(t, n.procs["master"], n.masterAPI, n.masterToken, acked.list(), 90*time.Second)
	t.Logf("%d events acknowledged and final across a broker restart", acked.len())
	if st.refused > 0 {
		t.Fatalf("%d publishes refused, e.g. %s", st.refused, st.firstRefusal)
	}
	n.finish(acked)
}

// TestRegistryRoleOverRabbitMQ: hubs keep letting devices in from their
// last good login while the registry is down, and a revocation reaches
// every hub and drops the device's connections within a second.
func TestRegistryRoleOverRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five processes")
	}
	n := startRoleNet(t, 2)
	tok, err := os.ReadFile(filepath.Join(n.root, "registry", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry.Client{BaseURL: n.registryAPI, Token: strings.TrimSpace(string(tok))}
	_, dt, err := reg.Add(context.Background(), "fleet/site", "dev-r")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(hub int) (*sim.Device, error) {
		return sim.Dial(context.Background(), n.hubMQTT[hub], "dev-r", "fleet/site", dt)
	}
	for hub := range n.hubMQTT { // a good login on each hub, remembered
		d, err := dial(hub)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
	}

	n.procs["registry"].stop(t)
	d0, err := dial(0)
	if err != nil {
		t.Fatalf("login while the registry is down: %v", err)
	}
	r, err := d0.PublishEvent(context.Background(), time.Now())
	if err != nil || !r.OK() {
		t.Fatalf("publish while the registry is down: %+v %v", r, err)
	}
	n.restart("registry", n.registryArgs, "")
	d1, err := dial(1)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if _, err := reg.Revoke(context.Background(), "dev-r"); err != nil {
		t.Fatal(err)
	}
	for i, d := range []*sim.Device{d0, d1} {
		for {
			r, err := d.PublishEvent(context.Background(), time.Now())
			if err != nil || !r.OK() {
				break // dropped, or refused
			}
			if time.Since(start) > time.Second {
				t.Fatalf("hub-%d still takes the revoked device's events %v after the revocation", i+1, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("revocation took effect on both hubs within %v", time.Since(start).Round(time.Millisecond))
	if _, err := dial(0); err == nil {
		t.Fatal("a revoked device logged in again")
	}
	waitFinal(t, n.procs["master"], n.masterAPI, n.masterToken, []string{r.UID}, 30*time.Second)

	// An auditor's read token, made at the registry, reads its namespace
	// on the master's API and nothing else.
	mine, err := reg.CreateReadToken(context.Background(), "auditor", []string{"fleet/site"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := reg.CreateReadToken(context.Background(), "other", []string{"fleet/elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if code, err := getJSON(n.masterAPI, mine.Token, "/v1/events/"+r.UID, &ev); code != http.StatusOK {
		t.Fatalf("read token of the event's namespace on the master: %d %v", code, err)
	}
	if code, _ := getJSON(n.masterAPI, other.Token, "/v1/events/"+r.UID, &ev); code != http.StatusNotFound {
		t.Fatalf("read token of another namespace on the master: %d, want 404", code)
	}
	if code, _ := getJSON(n.masterAPI, "csr_not-a-token", "/v1/events/"+r.UID, &ev); code != http.StatusUnauthorized {
		t.Fatalf("unknown read token on the master: %d, want 401", code)
	}

	// A hub checks read tokens with the registry as itself too.
	if code, err := getJSON(n.hubAPI[0], mine.Token, "/v1/events/"+r.UID, &ev); code != http.StatusOK {
		t.Fatalf("read token on hub-1's API: %d %v", code, err)
	}

	// A revoked hub can no longer log devices in; the other hub still can.
	tokenFile := filepath.Join(n.root, "registry", "admin.token")
	if out, err := exec.Command(n.bin, "nodes", "revoke", "hub-2", "--api", n.registryAPI, "--token-file", tokenFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "revoked_at") {
		t.Fatalf("nodes revoke hub-2: %v\n%s", err, out)
	}
	out, err := exec.Command(n.bin, "nodes", "list", "--api", n.registryAPI, "--token-file", tokenFile).Output()
	if err != nil || strings.Count(string(out), "revoked_at") != 1 || !strings.Contains(string(out), `"hub-1"`) {
		t.Fatalf("nodes list: %v\n%s", err, out)
	}
	_, dt2, err := reg.Add(context.Background(), "fleet/site", "dev-after")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := sim.Dial(context.Background(), n.hubMQTT[1], "dev-after", "fleet/site", dt2); err == nil {
		d.Close()
		t.Fatal("a revoked hub logged a device in")
	}
	d, err := sim.Dial(context.Background(), n.hubMQTT[0], "dev-after", "fleet/site", dt2)
	if err != nil {
		t.Fatalf("hub-1 after hub-2's revocation: %v", err)
	}
	d.Close()
}

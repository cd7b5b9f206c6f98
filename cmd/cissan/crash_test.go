package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cissan/internal/event"
	"cissan/internal/ledger"
	"cissan/internal/registry"
	"cissan/internal/sim"
	"cissan/internal/store"
)

// The tests in this file run the real binary as an OS process, so that a
// crash is a real SIGKILL: no deferred Close, no flush, nothing but what
// reached the disk.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cissanBin builds the binary once per test run.
func cissanBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cissan-bin-")
		if binErr != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "cissan")
		out, err := exec.Command(gobin, "build", "-o", binPath, "cissan/cmd/cissan").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// freePort returns a port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freePortPair returns a port p such that p and p+1 are both free, for a
// two-hub network (the second hub listens on the first hub's port + 1).
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports found")
	return 0
}

// proc is one running `cissan` process.
type proc struct {
	cmd    *exec.Cmd
	stderr string // path of the file its stderr goes to
	done   chan struct{}
	err    error // cmd.Wait's result, once done is closed
	// expected lists what error lines may contain when the test causes
	// them (a broker stopped on purpose); checkLog lets those through.
	expected []string
}

func startProc(t testing.TB, bin, stderrPath string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = f // an *os.File: the child writes it directly, no copying goroutine
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	f.Close()
	p := &proc{cmd: cmd, stderr: stderrPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process's stderr, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.stderr)
	const max = 6000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// checkLog fails the test if the process logged a panic, a data race (a
// binary built with -race) or an error: none belongs in a crash and
// restart.
func (p *proc) checkLog(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "panic:") || strings.Contains(line, "DATA RACE") {
			t.Errorf("%s: %s", filepath.Base(p.stderr), line)
		}
		if strings.Contains(line, "level=ERROR") && !slices.ContainsFunc(p.expected, func(e string) bool { return strings.Contains(line, e) }) {
			t.Errorf("%s: %s", filepath.Base(p.stderr), line)
		}
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if p.exited() {
		t.Fatalf("cissan up exited by itself before the kill: %v\nstderr:\n%s", p.err, p.tail())
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process still running 10s after SIGKILL")
	}
	p.checkLog(t)
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("cissan up still running 20s after SIGTERM\nstderr:\n%s", p.tail())
	}
	if p.err != nil {
		t.Fatalf("cissan up after SIGTERM: %v (want exit status 0)\nstderr:\n%s", p.err, p.tail())
	}
	p.checkLog(t)
}

var httpc = &http.Client{Timeout: 10 * time.Second}

// waitReady waits until GET /v1/status answers 200.
func waitReady(t testing.TB, p *proc, api string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("cissan up exited before it was ready: %v\nstderr:\n%s", p.err, p.tail())
		}
		resp, err := httpc.Get(api + "/v1/status")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET /v1/status did not answer within 30s\nstderr:\n%s", p.tail())
}

// getJSON GETs path with the operator token and decodes a 200 answer.
func getJSON(api, token, path string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, api+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

// ackSet records every event uid a hub acknowledged with PUBACK code 0.
type ackSet struct {
	mu   sync.Mutex
	uids map[string]bool
}

func (a *ackSet) add(uid string) {
	a.mu.Lock()
	a.uids[uid] = true
	a.mu.Unlock()
}

func (a *ackSet) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.uids)
}

func (a *ackSet) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.uids))
	for u := range a.uids {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

type loadStats struct {
	mu                        sync.Mutex
	sent, acks, errs, refused int
	firstRefusal, firstErr    string
}

// publishLoad publishes from every device, several publishes in flight per
// device, as fast as PUBACKs come back, until ctx ends or the connection
// fails. Every uid acknowledged with code 0 goes into acked.
func publishLoad(ctx context.Context, devs []*sim.Device, perDevice int, acked *ackSet, st *loadStats) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, d := range devs {
		var evMu sync.Mutex // Device.Event is not safe for concurrent use
		for range perDevice {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					evMu.Lock()
					ev := d.Event(time.Now())
					evMu.Unlock()
					payload, err := json.Marshal(ev)
					if err != nil {
						panic(err)
					}
					uid := ev["uid"].(string)
					pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					r, err := d.Publish(pctx, hubTopic(d.UID), payload)
					cancel()
					st.mu.Lock()
					st.sent++
					switch {
					case err != nil:
						st.errs++
						if st.firstErr == "" {
							st.firstErr = err.Error()
						}
					case r.Code != 0:
						st.refused++
						if st.firstRefusal == "" {
							st.firstRefusal = fmt.Sprintf("uid %s: code 0x%02x: %s", uid, r.Code, r.Reason)
						}
					default:
						st.acks++
					}
					st.mu.Unlock()
					if err != nil {
						return // the connection is gone (the process was killed)
					}
					if r.Code == 0 {
						acked.add(uid)
					}
				}
			}()
		}
	}
	return &wg
}

func hubTopic(uid string) string { return "devices/" + uid + "/events" }

// waitFinal waits until GET /v1/events/{uid} reports every uid as final.
func waitFinal(t testing.TB, p *proc, api, token string, uids []string, within time.Duration) {
	t.Helper()
	left := map[string]string{}
	for _, u := range uids {
		left[u] = "not asked yet"
	}
	deadline := time.Now().Add(within)
	for len(left) > 0 && time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("cissan up exited: %v\nstderr:\n%s", p.err, p.tail())
		}
		for u := range left {
			var ev struct {
				Status string `json:"status"`
			}
			code, err := getJSON(api, token, "/v1/events/"+url.PathEscape(u), &ev)
			switch {
			case err == nil && ev.Status == "final":
				delete(left, u)
			case err == nil:
				left[u] = ev.Status
			case code == http.StatusNotFound:
				left[u] = "not found"
			default:
				left[u] = err.Error()
			}
		}
		if len(left) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(left) == 0 {
		return
	}
	var ex []string
	for u, s := range left {
		ex = append(ex, u+": "+s)
		if len(ex) == 10 {
			break
		}
	}
	sort.Strings(ex)
	t.Fatalf("%d of %d acknowledged events not final within %v after restart (acknowledged event lost?), e.g.\n  %s\n%s\nstderr:\n%s",
		len(left), len(uids), within, strings.Join(ex, "\n  "), networkState(api, token), p.tail())
}

// networkState describes the nodes and the newest blocks, for failure
// messages.
func networkState(api, token string) string {
	var b strings.Builder
	var status map[string]any
	if _, err := getJSON(api, token, "/v1/status", &status); err != nil {
		fmt.Fprintf(&b, "status: %v\n", err)
	} else {
		js, _ := json.Marshal(status)
		fmt.Fprintf(&b, "status: %s\n", js)
	}
	var blocks struct {
		Blocks []struct {
			Height      uint64 `json:"height"`
			EntryCount  uint64 `json:"entry_count"`
			Accepted    int    `json:"accepted"`
			Rejected    int    `json:"rejected"`
			Final       bool   `json:"final"`
			Validations []any  `json:"validations"`
		} `json:"blocks"`
	}
	if _, err := getJSON(api, token, "/v1/blocks?limit=10", &blocks); err != nil {
		fmt.Fprintf(&b, "blocks: %v\n", err)
	}
	for _, bl := range blocks.Blocks {
		js, _ := json.Marshal(bl.Validations)
		fmt.Fprintf(&b, "block %d: %d entries, %d accepted, %d rejected, final %v, validations %s\n", bl.Height, bl.EntryCount, bl.Accepted, bl.Rejected, bl.Final, js)
	}
	return b.String()
}

// TestCrashKeepsEveryAcknowledgedEvent kills `cissan up` with SIGKILL
// while devices publish at full speed, restarts it on the same data dir,
// and checks invariants 1 and 2: every event a hub acknowledged ends up
// final in the chain, and none is logged twice. Two kills at different
// moments (relative to the 200ms block cadence), then a clean stop and
// `cissan verify data`.
func TestCrashKeepsEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary for about a minute")
	}
	bin := cissanBin(t)
	dir := filepath.Join(t.TempDir(), "data")
	logs := t.TempDir()
	httpPort, mqttPort := freePort(t), freePortPair(t)
	for mqttPort == httpPort || mqttPort+1 == httpPort {
		mqttPort = freePortPair(t)
	}
	api := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	hubs := []string{"127.0.0.1:" + strconv.Itoa(mqttPort), "127.0.0.1:" + strconv.Itoa(mqttPort+1)}
	args := []string{"up", "--data-dir", dir, "--http-addr", "127.0.0.1:" + strconv.Itoa(httpPort),
		"--mqtt-addr", hubs[0], "--hubs", "2", "--block-interval", "200ms"}

	run := 0
	start := func() *proc {
		run++
		p := startProc(t, bin, filepath.Join(logs, fmt.Sprintf("run-%d.stderr", run)), args...)
		waitReady(t, p, api)
		return p
	}
	p := start()

	tokb, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokb))
	reg := &registry.Client{BaseURL: api, Token: token}
	ctx := context.Background()
	const ns = "crash/test"
	type dev struct{ uid, token string }
	var devices []dev
	for i := 1; i <= 8; i++ {
		uid := fmt.Sprintf("crash-%d", i)
		_, tok, err := reg.Add(ctx, ns, uid)
		if err != nil {
			t.Fatalf("register %s: %v", uid, err)
		}
		devices = append(devices, dev{uid, tok})
	}

	acked := &ackSet{uids: map[string]bool{}}
	// Different load durations so that the kills land at different points
	// of the block cycle (mint, broadcast, validation, pool commits).
	for round, loadFor := range []time.Duration{1500 * time.Millisecond, 1630 * time.Millisecond} {
		var devs []*sim.Device
		for i, d := range devices {
			sd, err := sim.Dial(ctx, hubs[i%len(hubs)], d.uid, ns, d.token)
			if err != nil {
				t.Fatalf("round %d: %v\nstderr:\n%s", round+1, err, p.tail())
			}
			devs = append(devs, sd)
		}
		before := acked.len()
		st := &loadStats{}
		lctx, stopLoad := context.WithCancel(ctx)
		wg := publishLoad(lctx, devs, 4, acked, st)
		time.Sleep(loadFor)
		p.kill(t) // publishes are in flight: 32 publishers never pause
		stopLoad()
		wg.Wait()
		for _, d := range devs {
			_ = d.Close()
		}
		n := acked.len() - before
		t.Logf("round %d: killed after %v of load: %d events acknowledged before the kill (%d publishes, %d cut off by the kill, %d refused; %d acknowledged in all)",
			round+1, loadFor, n, st.sent, st.errs, st.refused, acked.len())
		if st.refused > 0 {
			t.Errorf("round %d: %d publishes refused, first: %s", round+1, st.refused, st.firstRefusal)
		}
		if n < 100 {
			t.Fatalf("round %d: only %d events acknowledged; the load did not run (first error: %s)\nstderr:\n%s", round+1, n, st.firstErr, p.tail())
		}

		p = start()
		waitFinal(t, p, api, token, acked.list(), 30*time.Second)
		t.Logf("round %d: after restart all %d acknowledged events are final", round+1, acked.len())
	}

	// Exactly once, as the index sees it: page through every device's
	// events and count each uid.
	seen := map[string]int{}
	for _, d := range devices {
		cursor := ""
		for page := 0; ; page++ {
			var res struct {
				Events []struct {
					UID       string `json:"uid"`
					DeviceUID string `json:"device_uid"`
				} `json:"events"`
				Next string `json:"next"`
			}
			q := url.Values{"device": {d.uid}, "limit": {"1000"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if _, err := getJSON(api, token, "/v1/events?"+q.Encode(), &res); err != nil {
				t.Fatal(err)
			}
			for _, e := range res.Events {
				if e.DeviceUID != d.uid {
					t.Errorf("search device=%s returned %s of device %s", d.uid, e.UID, e.DeviceUID)
				}
				seen[e.UID]++
			}
			if res.Next == "" || len(res.Events) == 0 {
				break
			}
			if page > 1000 {
				t.Fatal("search never ends: cursor does not advance")
			}
			cursor = res.Next
		}
	}
	for _, u := range acked.list() {
		if seen[u] == 0 {
			t.Errorf("acknowledged %s is final but missing from GET /v1/events?device=", u)
		}
	}
	for u, c := range seen {
		if c > 1 {
			t.Errorf("event %s listed %d times", u, c)
		}
	}
	t.Logf("index lists %d events for %d acknowledged", len(seen), acked.len())

	p.stop(t)

	// Exactly once, as the chain itself holds it: the index has a UNIQUE
	// uid column, so count the master's stored entries too.
	chainCount := countChainUIDs(t, filepath.Join(dir, "master"))
	for u, c := range chainCount {
		if c > 1 {
			t.Errorf("event %s is logged %d times in the master's chain", u, c)
		}
	}
	for _, u := range acked.list() {
		if chainCount[u] == 0 {
			t.Errorf("acknowledged %s is not in the master's chain", u)
		}
	}
	if len(chainCount) != len(seen) {
		t.Errorf("master's chain holds %d distinct events, its index lists %d", len(chainCount), len(seen))
	}

	out, err := exec.Command(bin, "verify", "data", "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cissan verify data: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("cissan verify data succeeded without saying OK:\n%s", out)
	}
}

// countChainUIDs counts the uid of every entry stored in a node's chain.
func countChainUIDs(t testing.TB, nodeDir string) map[string]int {
	t.Helper()
	st, err := store.Open(ledger.StorePath(nodeDir), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.Height()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for i := uint64(0); i < h; i++ {
		blk, err := st.Block(i)
		if err != nil {
			t.Fatal(err)
		}
		for j, raw := range blk.Entries {
			en, err := event.DecodeEntry(raw, event.DefaultLimits())
			if err != nil {
				t.Fatalf("block %d entry %d: %v", i, j, err)
			}
			out[en.Event.UID]++
		}
	}
	return out
}

// TestPortInUse: `cissan up` on a taken port exits non-zero at once and
// names the flag to change.
func TestPortInUse(t *testing.T) {
	bin := cissanBin(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	cases := []struct {
		name       string
		http, mqtt string
		hubs       int
		want       string
	}{
		{"http", busyAddr, "127.0.0.1:" + strconv.Itoa(freePort(t)), 1, "--http-addr"},
		{"mqtt first hub", "127.0.0.1:" + strconv.Itoa(freePort(t)), busyAddr, 1, "--mqtt-addr"},
		// The second hub takes the first hub's port + 1.
		{"mqtt second hub", "127.0.0.1:" + strconv.Itoa(freePort(t)), "127.0.0.1:" + strconv.Itoa(busyPort-1), 2, "--mqtt-addr"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.hubs == 2 {
				// busyPort-1 must itself be free for the first hub.
				ln, err := net.Listen("tcp", c.mqtt)
				if err != nil {
					t.Skipf("port %s is taken by someone else: %v", c.mqtt, err)
				}
				ln.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "up", "--data-dir", filepath.Join(t.TempDir(), "data"),
				"--http-addr", c.http, "--mqtt-addr", c.mqtt, "--hubs", strconv.Itoa(c.hubs))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if ctx.Err() != nil {
				t.Fatalf("cissan up still running after 15s with %s taken\nstderr:\n%s", c.want, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("cissan up with %s taken: %v, want a non-zero exit\nstderr:\n%s", c.want, err, stderr.String())
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("cissan up panicked instead of reporting the taken port:\n%s", stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr does not name %s:\n%s", c.want, stderr.String())
			}
			if took > 5*time.Second {
				t.Errorf("took %v to give up, want a few seconds at most", took)
			}
			t.Logf("exit %d after %v: %s", ee.ExitCode(), took.Round(time.Millisecond), lastLine(stderr.String()))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

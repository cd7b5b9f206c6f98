package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cissan/internal/bus"
	"cissan/internal/registry"
)

// regOutput is a bytes.Buffer a command writes while the test reads.
type regOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *regOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *regOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// regProcess is `cissan registry` running in the test's process.
type regProcess struct {
	client *registry.Client // with the operator token
	stop   func() error     // ends it as SIGTERM would, and returns what it returned
}

var regAPILine = regexp.MustCompile(`API +(http://\S+)`)

// startRegistry runs runRegistry with args and waits until it serves.
func startRegistry(t *testing.T, dataDir string, args ...string) *regProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout regOutput
	done := make(chan error, 1)
	go func() {
		done <- runRegistry(ctx, Env{Stdout: &stdout, Stderr: t.Output()}, args)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("registry did not stop within 20s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if m := regAPILine.FindStringSubmatch(stdout.String()); m != nil {
			tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			return &regProcess{client: &registry.Client{BaseURL: m[1], Token: strings.TrimSpace(string(tok))}, stop: stop}
		}
		select {
		case err := <-done:
			t.Fatalf("registry returned %v before serving", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry not serving after 20s; stdout %q", stdout.String())
		}
	}
}

func TestRegistryCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Configured from a file, as every role can be.
	cfg := filepath.Join(t.TempDir(), "registry.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"data-dir": %q, "http-addr": "127.0.0.1:0", "log-level": "warn"}`, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRegistry(t, dir, "--config", cfg)
	if fi, err := os.Stat(filepath.Join(dir, "admin.token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, mode %v; want 0600", err, fi.Mode())
	}
	c := r.client
	_, tok, err := c.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Authenticate(ctx, "dev-1", tok); err != nil || d.Status != registry.StatusActive {
		t.Fatalf("Authenticate = %+v, %v", d, err)
	}
	if _, err := c.Authenticate(ctx, "dev-1", "cst_wrong"); !errors.Is(err, registry.ErrBadToken) {
		t.Fatalf("Authenticate with a wrong token = %v, want ErrBadToken", err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("registry stopped with %v, want nil", err)
	}
	if _, err := c.Get(ctx, "dev-1"); !errors.Is(err, registry.ErrUnreachable) {
		t.Fatalf("Get from a stopped registry = %v, want ErrUnreachable", err)
	}

	// A restart keeps the devices and the operator token.
	r2 := startRegistry(t, dir, "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	if r2.client.Token != c.Token {
		t.Fatal("the operator token changed across a restart")
	}
	if _, err := r2.client.Revoke(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.client.Authenticate(ctx, "dev-1", tok); !errors.Is(err, registry.ErrRevoked) {
		t.Fatalf("Authenticate of a revoked device = %v, want ErrRevoked", err)
	}
}

func TestRegistryCommandErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"port in use", []string{"--data-dir", dir, "--http-addr", busy.Addr().String()}, "--http-addr " + busy.Addr().String(), false},
		{"argument", []string{"--data-dir", dir, "extra"}, `unexpected argument "extra"`, true},
		{"unknown flag", []string{"--hubs", "3"}, "flag provided but not defined: -hubs", true},
		{"bad config file", []string{"--config", filepath.Join(dir, "none.json")}, "config file: open", true},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level", true},
		{"cert without key", []string{"--amqp-cert", "c.pem"}, "--amqp-cert needs --amqp-key", true},
		{"no broker", []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--amqp-url", "amqp://guest:secret@127.0.0.1:1/"}, "--amqp-url: connect to amqp://guest:xxxxx@127.0.0.1:1/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr regOutput
			err := runRegistry(context.Background(), Env{Stdout: &stderr, Stderr: &stderr}, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("runRegistry = %v, want an error containing %q", err, tt.want)
			}
			var ue *UsageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v", !tt.usage, tt.usage)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// regTestAMQPURL returns the test broker's URL, skipping the test when no
// RabbitMQ answers there, or failing it under CI=true, where one must.
func regTestAMQPURL(t *testing.T) string {
	url := os.Getenv("CISSAN_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err == nil {
		err = conn.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ is required under CI=true, and it does not answer: %v", err)
		}
		t.Skipf("no RabbitMQ (%v): start one or set CISSAN_TEST_AMQP_URL; under CI=true this fails", err)
	}
	return url
}

// regCleanupTopology deletes what a hub node and the registry declared under
// prefix.
func regCleanupTopology(t *testing.T, url, prefix string, hubs ...string) {
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Errorf("clean up %s: %v", prefix, err)
			return
		}
		defer conn.Close()
		queues := []string{prefix + ".master.batches", prefix + ".master.fetch"}
		for _, h := range hubs {
			for _, kind := range []string{"reply", "validations", "blocks", "registry"} {
				queues = append(queues, prefix+"."+kind+"."+h)
			}
		}
		for _, q := range queues { // one channel each: a failure closes it
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for _, ex := range []string{"master", "blocks", "validations", "registry"} {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(prefix+"."+ex, false, false)
				_ = ch.Close()
			}
		}
	})
}

// Every device change made through the registry's API reaches a hub over
// RabbitMQ within a second.
func TestRegistryPublishesChanges(t *testing.T) {
	url := regTestAMQPURL(t)
	prefix := "cissan-test-" + regRandomHex(6)
	regCleanupTopology(t, url, prefix, "hub-1")
	ctx := context.Background()

	// The hub connects first, as it would in a running network: its queue
	// exists before the registry publishes.
	hub, err := bus.DialAMQP(ctx, bus.AMQPConfig{URL: url, Prefix: prefix, Node: "hub-1", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	changes := make(chan string, 16)
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- hub.ConsumeDeviceChanges(cctx, "hub-1", func(uid string) { changes <- uid }) }()
	defer func() {
		cancel()
		if err := <-consumed; err != nil {
			t.Errorf("ConsumeDeviceChanges = %v", err)
		}
	}()

	dir := t.TempDir()
	r := startRegistry(t, dir, "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--amqp-url", url, "--amqp-prefix", prefix, "--log-level", "debug")
	c := r.client
	_, tok, err := c.Add(ctx, "acme/plant", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Authenticate(ctx, "dev-1", tok); err != nil || d.UID != "dev-1" {
		t.Fatalf("Authenticate = %+v, %v", d, err)
	}
	expect := func(what string) {
		t.Helper()
		select {
		case uid := <-changes:
			if uid != "dev-1" {
				t.Fatalf("change of %q after %s, want dev-1", uid, what)
			}
		case <-time.After(time.Second):
			t.Fatalf("no change reached the hub within 1s of %s", what)
		}
	}
	if _, _, err := c.Rotate(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	expect("the rotation")
	if _, err := c.Revoke(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	expect("the revocation")
	select {
	case uid := <-changes:
		t.Fatalf("unexpected change of %q (adding a device is no change to announce)", uid)
	case <-time.After(100 * time.Millisecond):
	}
	if _, _, err := c.Add(ctx, "acme/plant", "dev-2"); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("registry stopped with %v, want nil", err)
	}

	// A change committed but never delivered (here: made with no bus at
	// all) is delivered after the next start; delivered ones are not sent
	// again.
	reg, err := registry.Open(filepath.Join(dir, "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deactivate(ctx, "dev-2"); err != nil {
		t.Fatal(err)
	}
	reg.Close()
	r = startRegistry(t, dir, "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--amqp-url", url, "--amqp-prefix", prefix)
	select {
	case uid := <-changes:
		if uid != "dev-2" {
			t.Fatalf("after a restart the hubs heard of %q, want only the undelivered dev-2", uid)
		}
	case <-time.After(time.Second):
		t.Fatal("the undelivered change did not reach the hub within 1s of a restart")
	}
	select {
	case uid := <-changes:
		t.Fatalf("change of %q sent again after a restart", uid)
	case <-time.After(200 * time.Millisecond):
	}
}

func regRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

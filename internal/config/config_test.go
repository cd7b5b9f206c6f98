package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// settings is a role's flags as the tests declare them.
type settings struct {
	AMQPURL  string
	Hubs     int
	Interval time.Duration
	Debug    bool
	Config   string
}

func newFlags(s *settings, withConfig bool) *flag.FlagSet {
	fs := flag.NewFlagSet("role", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.AMQPURL, "amqp-url", "amqp://default", "")
	fs.IntVar(&s.Hubs, "hubs", 2, "")
	fs.DurationVar(&s.Interval, "block-interval", time.Second, "")
	fs.BoolVar(&s.Debug, "debug", false, "")
	if withConfig {
		fs.StringVar(&s.Config, "config", "", "")
	}
	return fs
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"amqp-url": "CISSAN_AMQP_URL", "hubs": "CISSAN_HUBS", "block-interval": "CISSAN_BLOCK_INTERVAL", "config": "CISSAN_CONFIG",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	full := writeFile(t, dir, "full.json", `{
		"amqp-url": "amqp://file",
		"hubs": 5,
		"block-interval": "250ms",
		"debug": true
	}`)
	strs := writeFile(t, dir, "strings.json", `{"hubs": "7", "debug": "true"}`)
	other := writeFile(t, dir, "other.json", `{"hubs": 9}`)
	empty := writeFile(t, dir, "empty.json", ` {} `)

	defaults := settings{AMQPURL: "amqp://default", Hubs: 2, Interval: time.Second}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		noConfig   bool // the FlagSet defines no --config
		want       settings
		wantPos    []string
		wantConfig string // the --config value after Load
	}{
		{name: "defaults", want: defaults},
		{name: "command line", args: []string{"--amqp-url", "amqp://cmd", "-hubs=3", "--debug"},
			want: settings{AMQPURL: "amqp://cmd", Hubs: 3, Interval: time.Second, Debug: true}},
		{name: "environment", env: map[string]string{"CISSAN_AMQP_URL": "amqp://env", "CISSAN_BLOCK_INTERVAL": "2s", "CISSAN_DEBUG": "1"},
			want: settings{AMQPURL: "amqp://env", Hubs: 2, Interval: 2 * time.Second, Debug: true}},
		{name: "empty variable is unset", env: map[string]string{"CISSAN_HUBS": ""}, want: defaults},
		{name: "command line beats environment", args: []string{"--hubs", "4"}, env: map[string]string{"CISSAN_HUBS": "8"},
			want: settings{AMQPURL: "amqp://default", Hubs: 4, Interval: time.Second}},
		{name: "file", args: []string{"--config", full},
			want: settings{AMQPURL: "amqp://file", Hubs: 5, Interval: 250 * time.Millisecond, Debug: true}, wantConfig: full},
		{name: "file values as strings", args: []string{"--config=" + strs},
			want: settings{AMQPURL: "amqp://default", Hubs: 7, Interval: time.Second, Debug: true}, wantConfig: strs},
		{name: "empty file", args: []string{"--config", empty}, want: defaults, wantConfig: empty},
		{name: "file named in environment", env: map[string]string{"CISSAN_CONFIG": full},
			want: settings{AMQPURL: "amqp://file", Hubs: 5, Interval: 250 * time.Millisecond, Debug: true}, wantConfig: full},
		{name: "command line names the file over environment", args: []string{"--config", other}, env: map[string]string{"CISSAN_CONFIG": full},
			want: settings{AMQPURL: "amqp://default", Hubs: 9, Interval: time.Second}, wantConfig: other},
		{name: "precedence: command line > environment > file > default",
			args: []string{"--config", full, "--amqp-url", "amqp://cmd"},
			env:  map[string]string{"CISSAN_HUBS": "6", "CISSAN_AMQP_URL": "amqp://env"},
			want: settings{AMQPURL: "amqp://cmd", Hubs: 6, Interval: 250 * time.Millisecond, Debug: true}, wantConfig: full},
		{name: "environment false beats file true", args: []string{"--config", full}, env: map[string]string{"CISSAN_DEBUG": "false"},
			want: settings{AMQPURL: "amqp://file", Hubs: 5, Interval: 250 * time.Millisecond}, wantConfig: full},
		{name: "no config flag: CISSAN_CONFIG ignored", noConfig: true, env: map[string]string{"CISSAN_CONFIG": "/nonexistent.json"}, want: defaults},
		{name: "positionals among flags", args: []string{"a", "--hubs", "3", "b", "-debug", "c"},
			want: settings{AMQPURL: "amqp://default", Hubs: 3, Interval: time.Second, Debug: true}, wantPos: []string{"a", "b", "c"}},
		{name: "after -- all positional", args: []string{"--hubs", "3", "a", "--", "--debug", "-", "--"},
			want: settings{AMQPURL: "amqp://default", Hubs: 3, Interval: time.Second}, wantPos: []string{"a", "--debug", "-", "--"}},
		{name: "-- first", args: []string{"--", "--hubs", "3"}, want: defaults, wantPos: []string{"--hubs", "3"}},
		{name: "lone dash is positional", args: []string{"-", "--hubs=3"},
			want: settings{AMQPURL: "amqp://default", Hubs: 3, Interval: time.Second}, wantPos: []string{"-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			fs := newFlags(&s, !tt.noConfig)
			pos, err := Load(fs, tt.args, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if s.Config != tt.wantConfig {
				t.Errorf("--config = %q, want %q", s.Config, tt.wantConfig)
			}
			s.Config = ""
			if s != tt.want {
				t.Errorf("settings = %+v, want %+v", s, tt.want)
			}
			if len(pos) != 0 || len(tt.wantPos) != 0 {
				if !reflect.DeepEqual(pos, tt.wantPos) {
					t.Errorf("positional = %q, want %q", pos, tt.wantPos)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string { return writeFile(t, dir, name, content) }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole message, with "DIR" for the temp dir
		is   error
	}{
		{name: "unknown flag", args: []string{"--hubz", "3"}, want: "flag provided but not defined: -hubz"},
		{name: "bad flag value", args: []string{"--hubs", "x"}, want: `invalid value "x" for flag -hubs: parse error`},
		{name: "help", args: []string{"-h"}, want: flag.ErrHelp.Error(), is: flag.ErrHelp},
		{name: "bad env value", env: map[string]string{"CISSAN_HUBS": "x"},
			want: `CISSAN_HUBS: invalid value "x" for flag -hubs: parse error`},
		{name: "bad env bool", env: map[string]string{"CISSAN_DEBUG": "yes"},
			want: `CISSAN_DEBUG: invalid value "yes" for flag -debug: parse error`},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "none.json")},
			want: "config file: open DIR/none.json: no such file or directory", is: os.ErrNotExist},
		{name: "missing file from env", env: map[string]string{"CISSAN_CONFIG": filepath.Join(dir, "none.json")},
			want: "config file: open DIR/none.json: no such file or directory", is: os.ErrNotExist},
		{name: "unknown key", args: []string{"--config", file("hubz.json", `{"hubz": 3}`)},
			want: `config file DIR/hubz.json: key "hubz": no such flag`},
		{name: "bad value in file", args: []string{"--config", file("badhubs.json", `{"hubs": "many"}`)},
			want: `config file DIR/badhubs.json: key "hubs": invalid value "many" for flag -hubs: parse error`},
		{name: "float for int", args: []string{"--config", file("float.json", `{"hubs": 2.5}`)},
			want: `config file DIR/float.json: key "hubs": invalid value "2.5" for flag -hubs: parse error`},
		{name: "syntax error", args: []string{"--config", file("syntax.json", "{\n  \"hubs\": 3,\n  \"debug\" true\n}")},
			want: `config file DIR/syntax.json:3:11: expected colon after object key`},
		{name: "not an object", args: []string{"--config", file("array.json", `["hubs", 3]`)},
			want: `config file DIR/array.json: want a JSON object of flag names and values`},
		{name: "empty file", args: []string{"--config", file("empty.json", ``)},
			want: `config file DIR/empty.json: empty file, want a JSON object`},
		{name: "trailing data", args: []string{"--config", file("trailing.json", `{"hubs": 3} {}`)},
			want: `config file DIR/trailing.json: data after the JSON object`},
		{name: "duplicate key", args: []string{"--config", file("dup.json", `{"hubs": 3, "hubs": 4}`)},
			want: `config file DIR/dup.json: key "hubs": given twice`},
		{name: "null", args: []string{"--config", file("null.json", `{"amqp-url": null}`)},
			want: `config file DIR/null.json: key "amqp-url": want a string, number or boolean, not null`},
		{name: "array value", args: []string{"--config", file("arr.json", `{"amqp-url": ["a"]}`)},
			want: `config file DIR/arr.json: key "amqp-url": want a string, number or boolean, not an array`},
		{name: "object value", args: []string{"--config", file("obj.json", `{"amqp-url": {}}`)},
			want: `config file DIR/obj.json: key "amqp-url": want a string, number or boolean, not an object`},
		{name: "config in config", args: []string{"--config", file("self.json", `{"config": "other.json"}`)},
			want: `config file DIR/self.json: key "config": a config file cannot name another`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			_, err := Load(newFlags(&s, true), tt.args, func(k string) string { return tt.env[k] })
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

// A flag the command line or the environment sets is not read from the
// file, so a bad value there for it does not matter; a bad key does.
func TestLoadFileValueOverridden(t *testing.T) {
	p := writeFile(t, t.TempDir(), "c.json", `{"hubs": "many", "debug": "maybe"}`)
	var s settings
	_, err := Load(newFlags(&s, true), []string{"--config", p, "--hubs", "3"}, func(k string) string {
		return map[string]string{"CISSAN_DEBUG": "true"}[k]
	})
	if err != nil || s.Hubs != 3 || !s.Debug {
		t.Fatalf("Load = %v, settings %+v; want hubs 3 and debug from command line and env", err, s)
	}
}

func ExampleLoad() {
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	url := fs.String("amqp-url", "", "RabbitMQ URL")
	hubs := fs.Int("hubs", 2, "number of hubs")
	fs.String("config", "", "JSON config file")
	env := map[string]string{"CISSAN_AMQP_URL": "amqp://rabbit:5672/", "CISSAN_HUBS": "5"}
	pos, err := Load(fs, []string{"data", "--hubs", "3"}, func(k string) string { return env[k] })
	if err != nil {
		panic(err)
	}
	fmt.Println(*url, *hubs, pos)
	// Output: amqp://rabbit:5672/ 3 [data]
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	junk := writeFile(t, dir, "junk.pem", "not PEM")
	tests := []struct {
		name      string
		args      []string
		want      string // error; "" for success
		roots     bool
		clientCrt bool
	}{
		{name: "none", args: nil},
		{name: "CA", args: []string{"--amqp-ca", cert}, roots: true},
		{name: "client certificate", args: []string{"--amqp-cert", cert, "--amqp-key", key}, clientCrt: true},
		{name: "all three", args: []string{"--amqp-ca", cert, "--amqp-cert", cert, "--amqp-key", key}, roots: true, clientCrt: true},
		{name: "cert without key", args: []string{"--amqp-cert", cert}, want: "--amqp-cert needs --amqp-key"},
		{name: "key without cert", args: []string{"--amqp-key", key}, want: "--amqp-key needs --amqp-cert"},
		{name: "missing CA", args: []string{"--amqp-ca", dir + "/none.pem"}, want: "--amqp-ca: open " + dir + "/none.pem: no such file or directory"},
		{name: "CA not PEM", args: []string{"--amqp-ca", junk}, want: "--amqp-ca " + junk + ": no PEM certificate in it"},
		{name: "key does not match", args: []string{"--amqp-cert", cert, "--amqp-key", junk}, want: "--amqp-cert, --amqp-key: tls: failed to find any PEM data in key input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			f := AddTLSFlags(fs, "amqp", "RabbitMQ")
			if _, err := Load(fs, tt.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.Config()
			if tt.want != "" {
				if err == nil || err.Error() != tt.want {
					t.Fatalf("Config() = %v, want error %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.args) == 0 {
				if cfg != nil {
					t.Fatalf("Config() = %+v with no flags, want nil", cfg)
				}
				return
			}
			if (cfg.RootCAs != nil) != tt.roots || (len(cfg.Certificates) == 1) != tt.clientCrt {
				t.Errorf("Config() = roots %v, %d certificates; want roots %v, client certificate %v", cfg.RootCAs != nil, len(cfg.Certificates), tt.roots, tt.clientCrt)
			}
		})
	}
}

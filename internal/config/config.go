// Package config is the one configuration scheme of cissan's long-running
// roles (registry, master, hub). A role declares its settings as flags on a
// flag.FlagSet; Load then fills every flag from, in order of precedence:
//
//  1. the command line: --amqp-url=amqp://...
//  2. the environment: CISSAN_ and the flag name in upper snake case,
//     CISSAN_AMQP_URL=amqp://... (an empty variable counts as unset)
//  3. a JSON config file named by --config (or CISSAN_CONFIG), whose keys
//     are flag names: {"amqp-url": "amqp://...", "hubs": 3, "debug": true}
//  4. the flag's default.
//
// A value from the environment or the file goes through the flag's own Set,
// so it is parsed exactly as on the command line: "1s" for a duration, 3 or
// "3" for an int. Every error names where the bad value came from: the
// flag, the variable, or the file and key.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ConfigFlag is the flag that names the config file. A FlagSet that does
// not define it reads no file.
const ConfigFlag = "config"

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "CISSAN_"

// EnvName returns the environment variable that sets flag name:
// "amqp-url" -> "CISSAN_AMQP_URL".
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Load parses args with fs, then sets every flag the command line left
// unset from the environment (read with getenv) or else from the config
// file, and returns the positional arguments. Flags and positional
// arguments may be mixed; after "--" everything is positional. It returns
// flag.ErrHelp for -h and --help, and the flag package's message for a bad
// command line (fs also prints it, with the usage, to fs.Output()).
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	fromCmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromCmdline[f.Name] = true })

	// The file's name comes from the command line or the environment
	// (or the flag's default), never from the file itself.
	var file string
	if f := fs.Lookup(ConfigFlag); f != nil {
		if v := getenv(EnvName(ConfigFlag)); v != "" && !fromCmdline[ConfigFlag] {
			if err := set(fs, ConfigFlag, v); err != nil {
				return nil, fmt.Errorf("%s: %w", EnvName(ConfigFlag), err)
			}
		}
		file = f.Value.String()
	}

	fromEnv := map[string]bool{}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, name := range names { // VisitAll goes in lexical order
		if fromCmdline[name] || name == ConfigFlag {
			continue
		}
		env := EnvName(name)
		v := getenv(env)
		if v == "" {
			continue
		}
		if err := set(fs, name, v); err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
		fromEnv[name] = true
	}

	if file == "" {
		return pos, nil
	}
	values, err := readFile(file)
	if err != nil {
		return nil, err
	}
	for _, kv := range values {
		if fs.Lookup(kv.key) == nil {
			return nil, fmt.Errorf("config file %s: key %q: no such flag", file, kv.key)
		}
		if kv.key == ConfigFlag {
			return nil, fmt.Errorf("config file %s: key %q: a config file cannot name another", file, kv.key)
		}
		if fromCmdline[kv.key] || fromEnv[kv.key] {
			continue
		}
		if err := set(fs, kv.key, kv.value); err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", file, kv.key, err)
		}
	}
	return pos, nil
}

// set sets a flag, with the flag package's own wording for a bad value.
func set(fs *flag.FlagSet, name, value string) error {
	if err := fs.Set(name, value); err != nil {
		return fmt.Errorf("invalid value %q for flag -%s: %w", value, name, err)
	}
	return nil
}

// parseArgs parses args into fs, letting flags follow positional
// arguments, as `cissan registry --data-dir d` and `cissan registry d
// --http-addr a` both read naturally. After "--" everything is
// positional, even what starts with "-".
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		// fs.Parse stopped at a positional argument (the "--" that would
		// also stop it is gone): keep it and parse what follows.
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type keyValue struct{ key, value string }

// readFile reads a config file: one JSON object whose values are strings,
// numbers or booleans. It returns the pairs in file order, so the first bad
// one is reported, and refuses a key given twice.
func readFile(path string) ([]keyValue, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	kvs, err := parseObject(b)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(b, se.Offset)
			return nil, fmt.Errorf("config file %s:%d:%d: %w", path, line, col, err)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return kvs, nil
}

func parseObject(b []byte) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, errors.New("empty file, want a JSON object")
	}
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("want a JSON object of flag names and values")
	}
	var kvs []keyValue
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // inside an object, the decoder yields only string keys here
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q: given twice", key)
		}
		seen[key] = true
		v, err := scalar(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		kvs = append(kvs, keyValue{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return kvs, nil
}

// scalar turns a JSON string, number or boolean into the text fs.Set takes.
func scalar(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	case nil:
		return "", errors.New("want a string, number or boolean, not null")
	case []any:
		return "", errors.New("want a string, number or boolean, not an array")
	default:
		return "", errors.New("want a string, number or boolean, not an object")
	}
}

// position turns a byte offset into a 1-based line and column.
func position(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// TLSFlags are a TLS client's settings as flags: a CA bundle to verify the
// server with (instead of the system's roots), and a certificate and key
// to present to it.
type TLSFlags struct {
	prefix        string
	CA, Cert, Key string
}

// AddTLSFlags defines --PREFIX-ca, --PREFIX-cert and --PREFIX-key on fs,
// for the TLS client of what (e.g. "RabbitMQ").
func AddTLSFlags(fs *flag.FlagSet, prefix, what string) *TLSFlags {
	f := &TLSFlags{prefix: prefix}
	fs.StringVar(&f.CA, prefix+"-ca", "", "PEM file of the CA certificates that sign "+what+"'s certificate (default: the system's)")
	fs.StringVar(&f.Cert, prefix+"-cert", "", "PEM file of the client certificate to present to "+what+" (with --"+prefix+"-key)")
	fs.StringVar(&f.Key, prefix+"-key", "", "PEM file of the client certificate's private key (with --"+prefix+"-cert)")
	return f
}

// Config returns the TLS configuration the flags describe, or nil if none
// of them is set. Errors name the flag.
func (f *TLSFlags) Config() (*tls.Config, error) {
	if f.CA == "" && f.Cert == "" && f.Key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("--%s-ca: %w", f.prefix, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-ca %s: no PEM certificate in it", f.prefix, f.CA)
		}
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("--%s-cert, --%s-key: %w", f.prefix, f.prefix, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.Cert != "":
		return nil, fmt.Errorf("--%s-cert needs --%s-key", f.prefix, f.prefix)
	case f.Key != "":
		return nil, fmt.Errorf("--%s-key needs --%s-cert", f.prefix, f.prefix)
	}
	return cfg, nil
}

package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cissan/internal/proof"
)

// runProof fetches an event's proof bundle from the API and writes it to
// stdout or a file, ready for `cissan verify proof`; with --ots, it
// writes the OpenTimestamps file and the entry bytes it timestamps.
func runProof(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("proof", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "API base URL")
	tokenFile := fs.String("token-file", "./data/admin.token", "file holding a bearer token (CISSAN_TOKEN overrides)")
	out := fs.String("o", "", "write the proof to this file instead of stdout")
	asOTS := fs.Bool("ots", false, "write an OpenTimestamps file to -o FILE.ots and the entry bytes it timestamps to FILE (needs a confirmed Bitcoin anchor)")
	device := fs.String("device", "", "the event's device_uid, where its uid names events of several devices")
	version := fs.Int("version", 0, "the event's version, where its device sent several contents under its uid")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: cissan proof [--api URL] [--token-file FILE] [-o FILE] [--ots] [--device UID] [--version N] EVENT_UID")
	}
	if *asOTS && !strings.HasSuffix(*out, ".ots") {
		return usagef("proof: --ots needs -o FILE.ots; the entry bytes go to FILE")
	}
	tok, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *device != "" {
		q.Set("device", *device)
	}
	if *version != 0 {
		q.Set("version", fmt.Sprint(*version))
	}
	path := "/v1/events/" + url.PathEscape(pos[0]) + "/proof"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := apiGet(ctx, *api, path, tok)
	if err != nil {
		if strings.HasPrefix(err.Error(), "300 ") {
			return fmt.Errorf("proof for %q: %w; name one with --device (and --version)", pos[0], err)
		}
		return fmt.Errorf("proof for %q: %w", pos[0], err)
	}
	if *asOTS {
		return writeOTS(env, body, *out)
	}
	if *out == "" {
		_, err = env.Stdout.Write(body)
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return fmt.Errorf("write proof: %w", err)
	}
	fmt.Fprintf(env.Stderr, "proof written to %s\n", *out)
	return nil
}

// writeOTS converts a bundle to an OpenTimestamps file at path and writes
// the entry bytes beside it, where OpenTimestamps tools look for them.
func writeOTS(env Env, bundle []byte, path string) error {
	b, err := proof.Parse(bundle)
	if err != nil {
		return err
	}
	data, err := proof.OTS(b)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	entry, err := base64.StdEncoding.DecodeString(b.Entry)
	if err != nil {
		return fmt.Errorf("proof: entry: %w", err)
	}
	target := strings.TrimSuffix(path, ".ots")
	if err := os.WriteFile(target, entry, 0o644); err != nil {
		return fmt.Errorf("write entry: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write OpenTimestamps proof: %w", err)
	}
	fmt.Fprintf(env.Stderr, "OpenTimestamps proof written to %s, for the entry bytes in %s\n", path, target)
	return nil
}

// apiGet GETs path from the API with a bearer token and returns the body;
// a non-2xx answer is an error carrying the server's message.
func apiGet(ctx context.Context, base, path, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	return doAPI(req, token)
}

// doAPI sends req with a bearer token and returns the body of a 2xx
// answer, or an error carrying the server's message.
func doAPI(req *http.Request, token string) ([]byte, error) {
	req.Header.Set("Authorization", "Bearer "+token)
	hc, err := apiClient("") // CISSAN_CACERT for an https:// API of a private CA
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

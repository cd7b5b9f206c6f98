package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls the registry's operator API (NewHandler). Its methods mirror
// the Registry's.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:8080"
	Token   string       // operator bearer token
	HTTP    *http.Client // http.DefaultClient if nil
	// Node, if set, signs every request as a node (nodeauth.go) instead
	// of sending Token: how hubs and the master call the registry.
	Node *NodeSigner
}

// APIError is an error answer from the API: the HTTP status and the
// server's message.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry api: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// ErrUnreachable is a registry that did not answer: a network error, a
// timeout, or a 5xx status. The same request may well succeed later.
var ErrUnreachable = errors.New("registry unreachable")

// Unwrap maps the status to the registry's sentinel where only one fits, so
// that errors.Is works across the wire for the common cases. A 409 may be
// ErrExists or ErrRevoked; tell them apart by the operation.
func (e *APIError) Unwrap() error {
	switch {
	case e.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case e.StatusCode == http.StatusBadRequest:
		return ErrInvalid
	case e.StatusCode >= 500:
		return ErrUnreachable
	}
	return nil
}

// Add registers a device and returns it with its token.
func (c *Client) Add(ctx context.Context, namespace, uid string) (Device, string, error) {
	var dt DeviceToken
	err := c.do(ctx, http.MethodPost, "/v1/devices", AddRequest{Namespace: namespace, UID: uid}, &dt)
	return dt.Device, dt.Token, err
}

// List returns one page of devices and the After of the next page ("" if
// this is the last).
func (c *Client) List(ctx context.Context, f ListFilter) ([]Device, string, error) {
	q := url.Values{}
	if f.Namespace != "" {
		q.Set("namespace", f.Namespace)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/devices"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp ListResponse
	if err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, "", err
	}
	return resp.Devices, resp.Next, nil
}

// Get returns one device.
func (c *Client) Get(ctx context.Context, uid string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodGet, devicePath(uid, ""), nil, &d)
	return d, err
}

// Deactivate deactivates a device.
func (c *Client) Deactivate(ctx context.Context, uid string) (Device, error) {
	return c.action(ctx, uid, "deactivate")
}

// Reactivate reactivates a device.
func (c *Client) Reactivate(ctx context.Context, uid string) (Device, error) {
	return c.action(ctx, uid, "reactivate")
}

// Revoke revokes a device for good.
func (c *Client) Revoke(ctx context.Context, uid string) (Device, error) {
	return c.action(ctx, uid, "revoke")
}

// Rotate gives a device a new token and returns it.
func (c *Client) Rotate(ctx context.Context, uid string) (Device, string, error) {
	var dt DeviceToken
	err := c.do(ctx, http.MethodPost, devicePath(uid, "rotate"), nil, &dt)
	return dt.Device, dt.Token, err
}

func (c *Client) action(ctx context.Context, uid, action string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, devicePath(uid, action), nil, &d)
	return d, err
}

func devicePath(uid, action string) string {
	p := "/v1/devices/" + url.PathEscape(uid)
	if action != "" {
		p += "/" + action
	}
	return p
}

// do sends one request and decodes a 2xx answer into out; any other answer
// becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var raw []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("registry api: %w", err)
		}
		raw = b
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("registry api: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.Node != nil:
		if err := c.Node.Sign(req, raw); err != nil {
			return fmt.Errorf("registry api: %w", err)
		}
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("registry api: %w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("registry api: %s %s: read answer: %w: %w", method, path, ErrUnreachable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb errorBody
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if msg == "" {
			msg = "no error message"
		}
		return &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("registry api: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

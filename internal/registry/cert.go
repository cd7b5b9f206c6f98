package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
)

// addRequireCertColumn gives a registry created before client
// certificates its devices.require_cert column (0: a token suffices).
func addRequireCertColumn(db *sql.DB) error {
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('devices') WHERE name = 'require_cert'`).Scan(&n); err != nil {
		return fmt.Errorf("read devices schema: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.Exec(`ALTER TABLE devices ADD COLUMN require_cert INTEGER NOT NULL DEFAULT 0`); err != nil {
		return fmt.Errorf("add devices.require_cert: %w", err)
	}
	return nil
}

// AddRequiringCert registers an active device that may log in only with a
// client certificate naming it; it still gets a token, which hubs accept
// only beside such a certificate.
func (r *Registry) AddRequiringCert(ctx context.Context, namespace, uid string) (Device, string, error) {
	return r.add(ctx, namespace, uid, true)
}

// AddRequiringCert registers a device that must log in with a client
// certificate (see Registry.AddRequiringCert).
func (c *Client) AddRequiringCert(ctx context.Context, namespace, uid string) (Device, string, error) {
	var dt DeviceToken
	err := c.do(ctx, http.MethodPost, "/v1/devices", AddRequest{Namespace: namespace, UID: uid, RequireCert: true}, &dt)
	return dt.Device, dt.Token, err
}

// Get asks the upstream registry for a device, for a hub admitting a
// device by its client certificate; answers are not cached, since a
// certificate login has no token the cache could vouch for. A Client
// upstream is asked through the route a node's signature admits
// (Client.CertificateDevice).
func (c *Cache) Get(ctx context.Context, uid string) (Device, error) {
	switch g := c.upstream.(type) {
	case interface {
		CertificateDevice(ctx context.Context, uid string) (Device, error)
	}:
		return g.CertificateDevice(ctx, uid)
	case interface {
		Get(ctx context.Context, uid string) (Device, error)
	}:
		return g.Get(ctx, uid)
	}
	return Device{}, errors.New("registry client cannot look devices up")
}

// CertificateRequest asks for the device a hub admits by a client
// certificate it verified: POST /v1/auth/certificate.
type CertificateRequest struct {
	UID string `json:"device_uid"`
}

// CertificateDevice returns the device a hub is admitting by its verified
// client certificate. A hub may ask this with its node signature
// (NodeRoutes); it learns the device's record, never its token.
func (c *Client) CertificateDevice(ctx context.Context, uid string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "/v1/auth/certificate", CertificateRequest{UID: uid}, &d)
	return d, err
}

func (h *handler) certificateDevice(w http.ResponseWriter, req *http.Request) {
	var body CertificateRequest
	if !decodeBody(w, req, &body) {
		return
	}
	d, err := h.reg.Get(req.Context(), body.UID)
	if err != nil {
		writeErr(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

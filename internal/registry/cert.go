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
// certificate login has no token the cache could vouch for.
func (c *Cache) Get(ctx context.Context, uid string) (Device, error) {
	g, ok := c.upstream.(interface {
		Get(ctx context.Context, uid string) (Device, error)
	})
	if !ok {
		return Device{}, errors.New("registry client cannot look devices up")
	}
	return g.Get(ctx, uid)
}

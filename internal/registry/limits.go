package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"cissan/internal/event"
)

// Limits are the most a device may send to a hub: events and payload bytes
// per second. A zero field leaves the hub's default (hub.Guards).
type Limits struct {
	Rate  float64 `json:"max_rate,omitempty"`
	Bytes float64 `json:"max_bytes_rate,omitempty"`
}

// LimitsRequest sets the limits of one device or of every device of one
// namespace (exactly one of DeviceUID and Namespace): POST /v1/limits.
// Zero fields clear the limit, which the namespace's, or else the hub's
// default, then gives.
type LimitsRequest struct {
	DeviceUID string `json:"device_uid,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Limits
}

// limitsSchema keeps limits set for a device ("device:UID") or for a
// namespace ("namespace:ORG/GROUP").
const limitsSchema = `
CREATE TABLE IF NOT EXISTS limits (
	scope          TEXT PRIMARY KEY,
	max_rate       REAL NOT NULL,
	max_bytes_rate REAL NOT NULL
) WITHOUT ROWID;
`

func (l Limits) check() error {
	for name, v := range map[string]float64{"max_rate": l.Rate, "max_bytes_rate": l.Bytes} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %s must be a finite number, 0 or more", ErrInvalid, name)
		}
	}
	return nil
}

// SetLimits sets the limits of a device, or of a namespace's devices, and
// tells the hubs of each device they concern, which drop its connections:
// it logs in again under the new limits.
func (r *Registry) SetLimits(ctx context.Context, req LimitsRequest) error {
	if err := req.check(); err != nil {
		return err
	}
	var scope string
	var uids []string
	switch {
	case (req.DeviceUID == "") == (req.Namespace == ""):
		return fmt.Errorf("%w: give device_uid or namespace, not both", ErrInvalid)
	case req.DeviceUID != "":
		if _, err := r.Get(ctx, req.DeviceUID); err != nil {
			return err
		}
		scope, uids = "device:"+req.DeviceUID, []string{req.DeviceUID}
	default:
		if err := event.CheckNamespace(req.Namespace, maxNSPart); err != nil {
			return invalid(err)
		}
		scope = "namespace:" + req.Namespace
		rows, err := r.db.QueryContext(ctx, `SELECT uid FROM devices WHERE namespace = ?`, req.Namespace)
		if err != nil {
			return fmt.Errorf("set limits of %s: %w", req.Namespace, err)
		}
		for rows.Next() {
			var uid string
			if err := rows.Scan(&uid); err != nil {
				rows.Close()
				return fmt.Errorf("set limits of %s: %w", req.Namespace, err)
			}
			uids = append(uids, uid)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("set limits of %s: %w", req.Namespace, err)
		}
	}
	// The limits and the devices' outbox rows in one transaction, as for
	// every change: a registry that stops before the hubs hear of it tells
	// them at its next start.
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set limits of %s: %w", scope, err)
	}
	defer tx.Rollback()
	if req.Limits == (Limits{}) {
		_, err = tx.ExecContext(ctx, `DELETE FROM limits WHERE scope = ?`, scope)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO limits (scope, max_rate, max_bytes_rate) VALUES (?, ?, ?)`,
			scope, req.Rate, req.Bytes)
	}
	now := r.now().UTC().UnixMicro()
	for _, uid := range uids {
		if err != nil {
			break
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO outbox (uid, changed_us) VALUES (?, ?)`, uid, now)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("set limits of %s: %w", scope, err)
	}
	for _, uid := range uids {
		d, err := r.Get(ctx, uid)
		if err != nil {
			return err
		}
		r.notify(Change{UID: uid, Status: d.Status, Reason: "limits changed"})
	}
	return nil
}

// withLimits fills d.Limits: the device's own, field by field, else its
// namespace's.
func (r *Registry) withLimits(ctx context.Context, d Device) (Device, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT scope, max_rate, max_bytes_rate FROM limits WHERE scope IN (?, ?)`,
		"device:"+d.UID, "namespace:"+d.Namespace)
	if err != nil {
		return d, fmt.Errorf("limits of device %q: %w", d.UID, err)
	}
	defer rows.Close()
	var own, ns Limits
	for rows.Next() {
		var scope string
		var l Limits
		if err := rows.Scan(&scope, &l.Rate, &l.Bytes); err != nil {
			return d, fmt.Errorf("limits of device %q: %w", d.UID, err)
		}
		if strings.HasPrefix(scope, "device:") {
			own = l
		} else {
			ns = l
		}
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("limits of device %q: %w", d.UID, err)
	}
	d.Limits = own
	if d.Limits.Rate == 0 {
		d.Limits.Rate = ns.Rate
	}
	if d.Limits.Bytes == 0 {
		d.Limits.Bytes = ns.Bytes
	}
	return d, nil
}

// SetLimits sets limits through the registry's operator API.
func (c *Client) SetLimits(ctx context.Context, req LimitsRequest) error {
	var echo LimitsRequest
	return c.do(ctx, http.MethodPost, "/v1/limits", req, &echo)
}

func (h *handler) setLimits(w http.ResponseWriter, req *http.Request) {
	var body LimitsRequest
	if !decodeBody(w, req, &body) {
		return
	}
	if err := h.reg.SetLimits(req.Context(), body); err != nil {
		writeErr(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

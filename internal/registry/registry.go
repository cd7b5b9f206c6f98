// Package registry is the device registry: which devices may publish, in
// which namespace, and with which token. It is the authority hubs ask when a
// device connects, and it tells them at once when a device's credentials or
// status change, so that a revocation takes effect on every hub.
//
// Devices live in one SQLite file. A device token is shown once, when the
// device is added or its token rotated, and only its SHA-256 is stored.
// Revocation is final: a revoked device can be neither reactivated nor given
// a new token; register it again under a new device_uid instead.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cissan/internal/event"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Status is a device's state in the registry.
type Status string

// Device statuses. Only active devices may connect; inactive ones may be
// reactivated; revoked ones never come back.
const (
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
	StatusRevoked  Status = "revoked"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusInactive || s == StatusRevoked
}

// Device is a registered device. Its token is deliberately not part of it:
// the registry cannot give it back.
type Device struct {
	UID            string    `json:"device_uid"`
	Namespace      string    `json:"namespace"`
	Status         Status    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	TokenRotatedAt time.Time `json:"token_rotated_at"`
	// RequireCert: the device must log in with a client certificate that
	// names it (hubs with --tls-client-ca); its token alone is refused.
	RequireCert bool `json:"require_cert,omitempty"`
	// Limits are what the device may send to a hub, set for it or for
	// its namespace (limits.go); zero fields leave the hubs' defaults.
	Limits Limits `json:"limits,omitzero"`
}

// Change tells subscribers (hubs) a device's credentials or status changed:
// they must drop its live connections and forget cached credentials.
type Change struct {
	UID    string
	Status Status // the device's status after the change
	Reason string // "deactivated", "revoked", "rotated" or "reactivated"
}

// Reasons carried by Change.
const (
	ReasonDeactivated = "deactivated"
	ReasonReactivated = "reactivated"
	ReasonRevoked     = "revoked"
	ReasonRotated     = "rotated"
)

// Errors returned by the registry; test for them with errors.Is.
var (
	// ErrInvalid is a malformed namespace, device_uid, status or filter.
	ErrInvalid = errors.New("invalid device")
	// ErrNotFound is an unknown device_uid.
	ErrNotFound = errors.New("device not found")
	// ErrExists is an Add of a device_uid already registered (revoked ones
	// included: a uid is never reused).
	ErrExists = errors.New("device already exists")
	// ErrRevoked is an operation on, or a login by, a revoked device.
	ErrRevoked = errors.New("device is revoked")
	// ErrBadToken is a login with a wrong token or an unknown device_uid;
	// the two are not told apart, so as not to reveal which uids exist.
	ErrBadToken = errors.New("bad device credentials")
	// ErrInactive is a login by a deactivated device with its right token.
	ErrInactive = errors.New("device is inactive")
)

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// maxNSPart is the longest org or group of a namespace, as in events.
const maxNSPart = 64

// ListFilter selects devices for List. Zero fields do not filter.
type ListFilter struct {
	Namespace string
	Status    Status
	After     string // return only uids greater than this (the previous page's last uid)
	Limit     int    // DefaultListLimit if <= 0, at most MaxListLimit
}

// Registry is the device registry backed by one SQLite file. It is safe for
// concurrent use.
type Registry struct {
	db  *sql.DB
	now func() time.Time

	// writeMu serialises changes and their notifications, so subscribers see
	// changes in commit order and a Change never overtakes an earlier one.
	writeMu sync.Mutex

	subMu   sync.Mutex
	subs    map[int]func(Change)
	nextSub int
}

const schema = `
CREATE TABLE IF NOT EXISTS devices (
	uid              TEXT PRIMARY KEY,
	namespace        TEXT NOT NULL,
	status           TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'revoked')),
	token_sha256     BLOB NOT NULL CHECK (length(token_sha256) = 32),
	created_us       INTEGER NOT NULL,
	updated_us       INTEGER NOT NULL,
	token_rotated_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS devices_namespace ON devices (namespace, uid);
CREATE INDEX IF NOT EXISTS devices_status ON devices (status, uid);
-- Changes not yet confirmed delivered to the hubs: written in the change's
-- own transaction, deleted once the bus confirms, re-sent after a restart.
CREATE TABLE IF NOT EXISTS outbox (
	uid        TEXT PRIMARY KEY,
	changed_us INTEGER NOT NULL
) WITHOUT ROWID;
`

// Open opens the registry in the SQLite file at path, creating it if needed.
func Open(path string) (*Registry, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open registry: bad path %q", path)
	}
	// _txlock=immediate makes every write transaction take the write lock
	// when it begins, so read-check-write sequences cannot deadlock on a lock
	// upgrade against another process; busy_timeout makes them wait instead.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if _, err := db.Exec(schema + readTokenSchema + nodeSchema + limitsSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open registry: create schema: %w", err)
	}
	if err := addRequireCertColumn(db); err != nil { // cert.go
		db.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	return &Registry{db: db, now: time.Now, subs: map[int]func(Change){}}, nil
}

// Close closes the database. Subscribers are not called afterwards.
func (r *Registry) Close() error {
	return r.db.Close()
}

// invalid turns a format error from package event into an ErrInvalid that
// speaks of a device rather than of an event.
func invalid(err error) error {
	var ee *event.Error
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, ee.Field, ee.Reason)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// Add registers an active device and returns it with its token. The token is
// not kept and cannot be retrieved later; a lost token is replaced by Rotate.
func (r *Registry) Add(ctx context.Context, namespace, uid string) (Device, string, error) {
	return r.add(ctx, namespace, uid, false)
}

func (r *Registry) add(ctx context.Context, namespace, uid string, requireCert bool) (Device, string, error) {
	if err := event.CheckNamespace(namespace, maxNSPart); err != nil {
		return Device{}, "", invalid(err)
	}
	if err := event.CheckDeviceUID(uid); err != nil {
		return Device{}, "", invalid(err)
	}
	token, err := newToken(devicePrefix)
	if err != nil {
		return Device{}, "", fmt.Errorf("add device: %w", err)
	}
	sum := hashToken(token)
	now := r.now().UTC().Truncate(time.Microsecond)

	res, err := r.db.ExecContext(ctx,
		`INSERT INTO devices (uid, namespace, status, token_sha256, created_us, updated_us, token_rotated_us, require_cert)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING`,
		uid, namespace, string(StatusActive), sum[:], now.UnixMicro(), now.UnixMicro(), now.UnixMicro(), requireCert)
	if err != nil {
		return Device{}, "", fmt.Errorf("add device %q: %w", uid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Device{}, "", fmt.Errorf("add device %q: %w", uid, err)
	} else if n == 0 {
		return Device{}, "", fmt.Errorf("add device %q: %w", uid, ErrExists)
	}
	return Device{
		UID: uid, Namespace: namespace, Status: StatusActive,
		CreatedAt: now, UpdatedAt: now, TokenRotatedAt: now, RequireCert: requireCert,
	}, token, nil
}

const deviceCols = `uid, namespace, status, created_us, updated_us, token_rotated_us, require_cert`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(s scanner, extra ...any) (Device, error) {
	var d Device
	var status string
	var created, updated, rotated, requireCert int64
	dest := append([]any{&d.UID, &d.Namespace, &status, &created, &updated, &rotated, &requireCert}, extra...)
	if err := s.Scan(dest...); err != nil {
		return Device{}, err
	}
	d.Status = Status(status)
	d.CreatedAt = time.UnixMicro(created).UTC()
	d.UpdatedAt = time.UnixMicro(updated).UTC()
	d.TokenRotatedAt = time.UnixMicro(rotated).UTC()
	d.RequireCert = requireCert != 0
	return d, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func get(ctx context.Context, q querier, uid string) (Device, error) {
	d, err := scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE uid = ?`, uid))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device %q: %w", uid, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("get device %q: %w", uid, err)
	}
	return d, nil
}

// Get returns the device registered as uid, with its limits.
func (r *Registry) Get(ctx context.Context, uid string) (Device, error) {
	d, err := get(ctx, r.db, uid)
	if err != nil {
		return d, err
	}
	return r.withLimits(ctx, d)
}

// List returns devices matching f, ordered by uid. To page, pass the last
// uid of a page as the next filter's After.
func (r *Registry) List(ctx context.Context, f ListFilter) ([]Device, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return r.list(ctx, f, min(limit, MaxListLimit))
}

// list is List without the clamp on limit, so that the HTTP handler can ask
// for one device more than a page to learn whether another page follows.
func (r *Registry) list(ctx context.Context, f ListFilter, limit int) ([]Device, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, fmt.Errorf("%w: status must be active, inactive or revoked, not %q", ErrInvalid, f.Status)
	}
	q := `SELECT ` + deviceCols + ` FROM devices WHERE uid > ?`
	args := []any{f.After}
	if f.Namespace != "" {
		q += ` AND namespace = ?`
		args = append(args, f.Namespace)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	q += ` ORDER BY uid LIMIT ?`
	args = append(args, limit)
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	devs := []Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		devs = append(devs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return devs, nil
}

// Deactivate stops an active device from connecting until it is
// reactivated. Deactivating an inactive device changes nothing.
func (r *Registry) Deactivate(ctx context.Context, uid string) (Device, error) {
	return r.change(ctx, "deactivate", uid, nil, func(cur Status) (Status, bool) {
		return StatusInactive, cur == StatusActive
	})
}

// Reactivate lets an inactive device connect again with its current token.
// Reactivating an active device changes nothing.
func (r *Registry) Reactivate(ctx context.Context, uid string) (Device, error) {
	return r.change(ctx, "reactivate", uid, nil, func(cur Status) (Status, bool) {
		return StatusActive, cur == StatusInactive
	})
}

// Revoke bars a device for good. Revoking a revoked device is ErrRevoked.
func (r *Registry) Revoke(ctx context.Context, uid string) (Device, error) {
	return r.change(ctx, "revoke", uid, nil, func(Status) (Status, bool) {
		return StatusRevoked, true
	})
}

// Rotate gives a device a new token and returns it; the old token stops
// working as soon as Rotate returns. The device keeps its status, so an
// inactive device gets a token it can use once reactivated.
func (r *Registry) Rotate(ctx context.Context, uid string) (Device, string, error) {
	token, err := newToken(devicePrefix)
	if err != nil {
		return Device{}, "", fmt.Errorf("rotate device %q: %w", uid, err)
	}
	sum := hashToken(token)
	d, err := r.change(ctx, "rotate", uid, sum[:], func(cur Status) (Status, bool) {
		return cur, true
	})
	if err != nil {
		return Device{}, "", err
	}
	return d, token, nil
}

// change runs one transition in a write transaction. next maps the current
// status to the new one and says whether anything changes; a non-nil
// newHash replaces the token. Every transition of a revoked device is
// ErrRevoked. Subscribers are told after the commit, and only of changes.
func (r *Registry) change(ctx context.Context, op, uid string, newHash []byte, next func(cur Status) (Status, bool)) (Device, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()

	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return Device{}, fmt.Errorf("%s device %q: %w", op, uid, err)
	}
	defer tx.Rollback()
	d, err := get(ctx, tx, uid)
	if err != nil {
		return Device{}, fmt.Errorf("%s: %w", op, err)
	}
	if d.Status == StatusRevoked {
		return d, fmt.Errorf("%s device %q: %w", op, uid, ErrRevoked)
	}
	status, changed := next(d.Status)
	if !changed {
		return d, nil
	}
	now := r.now().UTC().Truncate(time.Microsecond)
	if newHash != nil {
		_, err = tx.ExecContext(ctx,
			`UPDATE devices SET status = ?, token_sha256 = ?, updated_us = ?, token_rotated_us = ? WHERE uid = ?`,
			string(status), newHash, now.UnixMicro(), now.UnixMicro(), uid)
		d.TokenRotatedAt = now
	} else {
		_, err = tx.ExecContext(ctx,
			`UPDATE devices SET status = ?, updated_us = ? WHERE uid = ?`,
			string(status), now.UnixMicro(), uid)
	}
	if err != nil {
		return Device{}, fmt.Errorf("%s device %q: %w", op, uid, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO outbox (uid, changed_us) VALUES (?, ?)`, uid, now.UnixMicro()); err != nil {
		return Device{}, fmt.Errorf("%s device %q: outbox: %w", op, uid, err)
	}
	if err := tx.Commit(); err != nil {
		return Device{}, fmt.Errorf("%s device %q: commit: %w", op, uid, err)
	}
	d.Status = status
	d.UpdatedAt = now
	r.notify(Change{UID: uid, Status: status, Reason: reasons[op]})
	return d, nil
}

var reasons = map[string]string{
	"deactivate": ReasonDeactivated,
	"reactivate": ReasonReactivated,
	"revoke":     ReasonRevoked,
	"rotate":     ReasonRotated,
}

// Authenticate checks a device's login. It succeeds only for an active
// device presenting its current token. A wrong token or an unknown uid is
// ErrBadToken; the status of a device is revealed (ErrInactive, ErrRevoked)
// only to a caller who holds its right token.
func (r *Registry) Authenticate(ctx context.Context, uid, token string) (Device, error) {
	var stored []byte
	d, err := scanDevice(r.db.QueryRowContext(ctx,
		`SELECT `+deviceCols+`, token_sha256 FROM devices WHERE uid = ?`, uid), &stored)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("authenticate device %q: %w", uid, err)
	}
	found := err == nil
	sum := hashToken(token)
	if !found || len(stored) != sha256.Size {
		// Compare anyway, so that an unknown uid costs the same time as a
		// known one with a wrong token.
		stored = make([]byte, sha256.Size)
	}
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 || !found {
		return Device{}, fmt.Errorf("authenticate device %q: %w", uid, ErrBadToken)
	}
	switch d.Status {
	case StatusActive:
		return r.withLimits(ctx, d)
	case StatusInactive:
		return d, fmt.Errorf("authenticate device %q: %w", uid, ErrInactive)
	case StatusRevoked:
		return d, fmt.Errorf("authenticate device %q: %w", uid, ErrRevoked)
	default:
		return d, fmt.Errorf("authenticate device %q: unknown status %q", uid, d.Status)
	}
}

// Subscribe registers fn to be told of every deactivation, reactivation,
// revocation and token rotation made through this Registry. fn is called
// synchronously, after the change commits and before the method that made
// it returns, in commit order. fn must not call Registry methods that change
// devices (Add, Deactivate, Reactivate, Revoke, Rotate): they would
// deadlock. Reading (Get, List, Authenticate) is fine. cancel stops the
// calls; it is safe to call more than once.
func (r *Registry) Subscribe(fn func(Change)) (cancel func()) {
	r.subMu.Lock()
	id := r.nextSub
	r.nextSub++
	r.subs[id] = fn
	r.subMu.Unlock()
	return func() {
		r.subMu.Lock()
		delete(r.subs, id)
		r.subMu.Unlock()
	}
}

func (r *Registry) notify(c Change) {
	r.subMu.Lock()
	fns := make([]func(Change), 0, len(r.subs))
	for _, fn := range r.subs {
		fns = append(fns, fn)
	}
	r.subMu.Unlock()
	for _, fn := range fns {
		fn(c)
	}
}

// Counts returns the number of devices in each status; every status is
// present in the map, zero included.
func (r *Registry) Counts(ctx context.Context) (map[Status]int, error) {
	counts := map[Status]int{StatusActive: 0, StatusInactive: 0, StatusRevoked: 0}
	rows, err := r.db.QueryContext(ctx, `SELECT status, count(*) FROM devices GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count devices: %w", err)
		}
		counts[Status(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	return counts, nil
}

// Undelivered returns the devices whose latest change is not yet confirmed
// delivered to the hubs, oldest change first, with the stamp of that
// change for Delivered.
func (r *Registry) Undelivered(ctx context.Context) (uids []string, stamps []int64, err error) {
	rows, err := r.db.QueryContext(ctx, `SELECT uid, changed_us FROM outbox ORDER BY changed_us, uid`)
	if err != nil {
		return nil, nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		var st int64
		if err := rows.Scan(&uid, &st); err != nil {
			return nil, nil, fmt.Errorf("read outbox: %w", err)
		}
		uids, stamps = append(uids, uid), append(stamps, st)
	}
	return uids, stamps, rows.Err()
}

// Stamp returns the stamp of uid's undelivered change, if it has one.
func (r *Registry) Stamp(ctx context.Context, uid string) (int64, bool, error) {
	var st int64
	err := r.db.QueryRowContext(ctx, `SELECT changed_us FROM outbox WHERE uid = ?`, uid).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read outbox: %w", err)
	}
	return st, true, nil
}

// Delivered records that the change of uid with the given stamp reached
// the bus. A later change of the same device keeps its row.
func (r *Registry) Delivered(ctx context.Context, uid string, stamp int64) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if _, err := r.db.ExecContext(ctx, `DELETE FROM outbox WHERE uid = ? AND changed_us = ?`, uid, stamp); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

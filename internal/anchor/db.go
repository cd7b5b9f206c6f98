package anchor

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	_ "modernc.org/sqlite" // the SQLite driver

	"cissan/internal/chain"
)

// The service's state lives in one SQLite file next to the master's
// chain: the Bitcoin blocks scanned, the wallet's transactions, and the
// anchors with every transaction tried for each. It is small (a row per
// anchor and per wallet transaction) and read whole at start.
const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS scanned (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS wtx (
	txid BLOB PRIMARY KEY,
	raw BLOB NOT NULL,           -- with witness, as broadcast
	coinbase INTEGER NOT NULL,
	ours INTEGER NOT NULL,       -- built and signed here
	dropped TEXT NOT NULL,       -- why it no longer counts ('' while it does)
	created_ms INTEGER NOT NULL,
	height INTEGER NOT NULL,     -- Bitcoin height of its block, -1 while unconfirmed
	block BLOB, tx_index INTEGER, branch BLOB, header BLOB
);
CREATE TABLE IF NOT EXISTS anchors (
	id INTEGER PRIMARY KEY,
	height INTEGER NOT NULL,     -- the anchored cissan block
	hash BLOB NOT NULL,
	created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
	txid BLOB PRIMARY KEY,
	anchor INTEGER NOT NULL REFERENCES anchors(id),
	fee INTEGER NOT NULL,
	broadcast_ms INTEGER NOT NULL, -- 0 until the node accepted it
	error TEXT NOT NULL
);`

type db struct{ sql *sql.DB }

func openDB(path string) (*db, error) {
	dsn := "file:" + url.PathEscape(path) + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)&_txlock=immediate"
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("anchor state %s: %w", path, err)
	}
	s.SetMaxOpenConns(1)
	if _, err := s.Exec(schema + historySchema); err != nil {
		s.Close()
		return nil, fmt.Errorf("anchor state %s: %w", path, err)
	}
	return &db{sql: s}, nil
}

func (d *db) close() error { return d.sql.Close() }

func (d *db) meta(key string) ([]byte, error) {
	var v []byte
	err := d.sql.QueryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func (d *db) setMeta(key string, v []byte) error {
	_, err := d.sql.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, key, v)
	return err
}

func (d *db) saveScanned(height int64, h chainhash.Hash) error {
	_, err := d.sql.Exec(`INSERT OR REPLACE INTO scanned (height, hash) VALUES (?, ?)`, height, h[:])
	return err
}

// rollback forgets the scanned blocks above fork and the coinbases they
// paid, and returns the other transactions they held to unconfirmed.
func (d *db) rollback(fork int64) error {
	tx, err := d.sql.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`DELETE FROM scanned WHERE height > ?`,
		`DELETE FROM wtx WHERE coinbase = 1 AND height > ?`,
		`UPDATE wtx SET height = -1, block = NULL, tx_index = NULL, branch = NULL, header = NULL WHERE height > ?`,
	} {
		if _, err := tx.Exec(q, fork); err != nil {
			return fmt.Errorf("roll back to Bitcoin height %d: %w", fork, err)
		}
	}
	return tx.Commit()
}

func (d *db) saveTx(w *wtx) error {
	var raw bytes.Buffer
	if err := w.tx.Serialize(&raw); err != nil {
		return err
	}
	var block, branch, header any
	var index any
	if w.height >= 0 {
		block, index, header = w.block[:], w.index, w.header
		b := make([]byte, 0, len(w.branch)*chainhash.HashSize)
		for _, h := range w.branch {
			b = append(b, h[:]...)
		}
		branch = b
	}
	_, err := d.sql.Exec(`INSERT OR REPLACE INTO wtx (txid, raw, coinbase, ours, dropped, created_ms, height, block, tx_index, branch, header)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.id[:], raw.Bytes(), w.coinbase, w.ours, w.dropped, w.created.UnixMilli(), w.height, block, index, branch, header)
	if err != nil {
		return fmt.Errorf("save wallet transaction %s: %w", w.id, err)
	}
	return nil
}

func (d *db) saveAnchor(a *record) error {
	res, err := d.sql.Exec(`INSERT INTO anchors (height, hash, created_ms) VALUES (?, ?, ?)`, a.height, a.hash[:], a.created.UnixMilli())
	if err != nil {
		return fmt.Errorf("save anchor of block %d: %w", a.height, err)
	}
	a.id, err = res.LastInsertId()
	return err
}

func (d *db) saveAttempt(at *attempt) error {
	var ms int64
	if !at.broadcast.IsZero() {
		ms = at.broadcast.UnixMilli()
	}
	_, err := d.sql.Exec(`INSERT OR REPLACE INTO attempts (txid, anchor, fee, broadcast_ms, error) VALUES (?, ?, ?, ?, ?)`,
		at.txid[:], at.anchor, at.fee, ms, at.err)
	if err != nil {
		return fmt.Errorf("save anchor transaction %s: %w", at.txid, err)
	}
	return nil
}

// load reads the whole state into s.
func (d *db) load(ctx context.Context, s *state) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT height, hash FROM scanned ORDER BY height`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var h int64
		var hash []byte
		if err := rows.Scan(&h, &hash); err != nil {
			rows.Close()
			return err
		}
		s.scanned = append(s.scanned, scannedBlock{height: h, hash: chainhash.Hash(hash)})
	}
	rows.Close()

	rows, err = d.sql.QueryContext(ctx, `SELECT txid, raw, coinbase, ours, dropped, created_ms, height, block, tx_index, branch, header FROM wtx`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, raw, block, branch, header []byte
		var index sql.NullInt64
		var created int64
		w := &wtx{}
		if err := rows.Scan(&id, &raw, &w.coinbase, &w.ours, &w.dropped, &created, &w.height, &block, &index, &branch, &header); err != nil {
			rows.Close()
			return err
		}
		w.tx = new(wire.MsgTx)
		if err := w.tx.Deserialize(bytes.NewReader(raw)); err != nil {
			rows.Close()
			return fmt.Errorf("wallet transaction %x: %w", id, err)
		}
		w.id, w.created = w.tx.TxHash(), time.UnixMilli(created)
		if w.height >= 0 {
			w.block, w.index, w.header = chainhash.Hash(block), uint32(index.Int64), header
			for i := 0; i+chainhash.HashSize <= len(branch); i += chainhash.HashSize {
				w.branch = append(w.branch, chainhash.Hash(branch[i:i+chainhash.HashSize]))
			}
		}
		s.txs[w.id] = w
	}
	rows.Close()

	rows, err = d.sql.QueryContext(ctx, `SELECT id, height, hash, created_ms FROM anchors ORDER BY id`)
	if err != nil {
		return err
	}
	byID := map[int64]*record{}
	for rows.Next() {
		a := &record{}
		var hash []byte
		var created int64
		if err := rows.Scan(&a.id, &a.height, &hash, &created); err != nil {
			rows.Close()
			return err
		}
		a.hash, a.created = chain.Hash(hash), time.UnixMilli(created)
		s.anchors = append(s.anchors, a)
		byID[a.id] = a
	}
	rows.Close()

	rows, err = d.sql.QueryContext(ctx, `SELECT txid, anchor, fee, broadcast_ms, error FROM attempts ORDER BY rowid`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		at := &attempt{}
		var id []byte
		var ms int64
		if err := rows.Scan(&id, &at.anchor, &at.fee, &ms, &at.err); err != nil {
			return err
		}
		at.txid = chainhash.Hash(id)
		if ms != 0 {
			at.broadcast = time.UnixMilli(ms)
		}
		if a := byID[at.anchor]; a != nil {
			a.attempts = append(a.attempts, at)
		}
	}
	return rows.Err()
}

package anchor

import (
	"database/sql"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"cissan/internal/chain"
)

// The history tree's perfect subtrees are stored in anchor.db as they
// complete, so that the audit path of a block in an anchored block's
// history costs a few lookups, not a pass over every block hash: a master
// minting a block a second has 31 million blocks after a year.
const historySchema = `
CREATE TABLE IF NOT EXISTS history (
	level INTEGER NOT NULL,
	idx INTEGER NOT NULL,
	hash BLOB NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;`

// historyBatch bounds the blocks added to the stored tree in one
// transaction.
const historyBatch = 10_000

// syncHistory stores the tree nodes of blocks up to n-1 that are not
// stored yet. Callers hold s.leavesMu.
func (s *Service) syncHistory(n uint64) error {
	if s.histSize == 0 && s.histRight == nil {
		if err := s.loadHistory(); err != nil {
			return err
		}
	}
	for s.histSize < n {
		end := min(n, s.histSize+historyBatch)
		tx, err := s.db.sql.Begin()
		if err != nil {
			return err
		}
		ins, err := tx.Prepare(`INSERT OR REPLACE INTO history (level, idx, hash) VALUES (?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return err
		}
		for h := s.histSize; h < end; h++ {
			hdr, err := s.cfg.Chain.Header(h)
			if err != nil {
				tx.Rollback()
				return fmt.Errorf("history: read block %d: %w", h, err)
			}
			leaf := chain.BlockLeaf(hdr.Hash())
			if err := s.appendLeaf(ins, h, leaf); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		s.histSize = end
	}
	return nil
}

// appendLeaf stores leaf h and every subtree it completes. histRight
// holds, per level, the left sibling waiting for its right one (the
// tree's right edge).
func (s *Service) appendLeaf(ins *sql.Stmt, h uint64, leaf chain.Hash) error {
	node, idx := leaf, h
	for level := 0; ; level++ {
		if _, err := ins.Exec(level, int64(idx), node[:]); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		if idx&1 == 0 {
			if level == len(s.histRight) {
				s.histRight = append(s.histRight, node)
			} else {
				s.histRight[level] = node
			}
			return nil
		}
		node = chain.Hash(rfc6962.DefaultHasher.HashChildren(s.histRight[level][:], node[:]))
		idx >>= 1
	}
}

// loadHistory reads how many leaves are stored and the tree's right edge.
func (s *Service) loadHistory() error {
	var size sql.NullInt64
	if err := s.db.sql.QueryRow(`SELECT MAX(idx) + 1 FROM history WHERE level = 0`).Scan(&size); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	s.histSize = uint64(size.Int64)
	s.histRight = nil
	// The left sibling waiting at each level is the last even-indexed
	// node of that level, if its pair is not complete.
	for level, n := 0, s.histSize; n > 0; level, n = level+1, n>>1 {
		var node chain.Hash
		if n&1 == 1 {
			var err error
			if node, err = s.historyNode(level, n-1); err != nil {
				return err
			}
		}
		s.histRight = append(s.histRight, node)
	}
	return nil
}

func (s *Service) historyNode(level int, idx uint64) (chain.Hash, error) {
	var b []byte
	if err := s.db.sql.QueryRow(`SELECT hash FROM history WHERE level = ? AND idx = ?`, level, int64(idx)).Scan(&b); err != nil {
		return chain.Hash{}, fmt.Errorf("history node %d/%d: %w", level, idx, err)
	}
	return chain.Hash(b), nil
}

// historyPath returns the audit path of block h in the history tree of
// size a (SPEC.md section 5).
func (s *Service) historyPath(h, a uint64) ([]chain.Hash, error) {
	s.leavesMu.Lock()
	defer s.leavesMu.Unlock()
	if err := s.syncHistory(a); err != nil {
		return nil, err
	}
	nodes, err := proof.Inclusion(h, a)
	if err != nil {
		return nil, fmt.Errorf("history path: %w", err)
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		n, err := s.historyNode(int(id.Level), id.Index)
		if err != nil {
			return nil, err
		}
		hashes[i] = n[:]
	}
	rehashed, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("history path: %w", err)
	}
	out := make([]chain.Hash, len(rehashed))
	for i, r := range rehashed {
		out[i] = chain.Hash(r)
	}
	return out, nil
}

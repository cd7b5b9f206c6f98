package ledger

import (
	"context"
	"fmt"

	"cissan/internal/event"
	"cissan/internal/index"
)

// Search returns one page of the events q selects, newest first, and the
// cursor of the next page ("" on the last). The index finds where the
// events are; their rows are read from the block store, the source of
// truth, so a search shows what the chain holds.
func (l *Ledger) Search(ctx context.Context, q index.Query) ([]index.Row, string, error) {
	refs, next, err := l.idx.Search(ctx, q)
	if err != nil {
		return nil, "", err
	}
	rows := make([]index.Row, len(refs))
	mint := map[uint64]int64{} // mint time by height, read once per block
	for i, ref := range refs {
		m, ok := mint[ref.Height]
		if !ok {
			hdr, _, err := l.st.Header(ref.Height)
			if err != nil {
				return nil, "", fmt.Errorf("search: block %d: %w", ref.Height, err)
			}
			m = hdr.MintTimeMs
			mint[ref.Height] = m
		}
		raw, err := l.st.Entry(ref.Height, ref.Index)
		if err != nil {
			return nil, "", fmt.Errorf("search: block %d entry %d: %w", ref.Height, ref.Index, err)
		}
		en, err := event.DecodeEntry(raw, l.limits)
		if err != nil {
			return nil, "", fmt.Errorf("search: block %d entry %d: %w", ref.Height, ref.Index, err)
		}
		rows[i] = index.RowOf(ref.Height, ref.Index, m, raw, en)
	}
	return rows, next, nil
}

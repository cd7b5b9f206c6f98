package index

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"cissan/internal/chain"
)

// Page sizes for Search.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Query selects events. Zero fields do not filter; set fields combine with
// AND.
type Query struct {
	DeviceUID, Namespace string
	// Namespaces, if non-nil, restricts results to these namespaces (scoped
	// read tokens). An empty non-nil slice matches nothing.
	Namespaces []string
	From, To   int64  // event timestamp range in ms, inclusive; 0 = open
	Key        string // has an item with this key
	Tag        string // has a tag whose label is this, or "analyzer:label"
	// Text matches events whose item keys, string values and numbers hold
	// every whitespace-separated word of Text, each taken literally (as a
	// phrase of its tokens, case-insensitive). Text with no letters or
	// digits matches nothing.
	Text   string
	Limit  int    // default DefaultLimit, at most MaxLimit
	Cursor string // opaque, from the previous page
}

// refCols reads a Ref from events e.
const (
	refCols   = `SELECT e.id, e.ts`
	refSelect = refCols + ` FROM events e`
)

type scanner interface {
	Scan(dest ...any) error
}

// scanRef reads a Ref. A ts that is not an integer can only have been
// written by something other than AddBlocks.
func scanRef(s scanner) (Ref, error) {
	var id int64
	var ts sql.NullInt64
	var r Ref
	if err := s.Scan(&id, &ts); err != nil {
		return r, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	r.Height, r.Index = splitID(id)
	if !ts.Valid {
		return r, fmt.Errorf("%w: row %d.%d: no timestamp", ErrCorrupt, r.Height, r.Index)
	}
	r.Timestamp = ts.Int64
	return r, nil
}

// Search returns one page of the events q selects, newest first (by height,
// then entry index, descending), and the cursor of the next page, "" on the
// last. Invalid query fields return an error wrapping ErrBadQuery.
func (x *Index) Search(ctx context.Context, q Query) (refs []Ref, next string, err error) {
	stmt, args, limit, err := searchSQL(q)
	if err != nil || stmt == "" {
		return nil, "", err
	}
	// Each shard returns its first limit+1 matches, the shards at once;
	// the page is the newest limit+1 of all of them.
	var got [Shards][]Ref
	err = x.eachShard(func(s *shard) error {
		var err error
		got[s.k], err = s.search(ctx, stmt, args)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	all := slices.Concat(got[:]...)
	slices.SortFunc(all, func(a, b Ref) int { return cmp.Compare(rowID(b.Height, b.Index), rowID(a.Height, a.Index)) })
	refs = all[:min(len(all), limit+1)]
	if len(refs) > limit {
		refs = refs[:limit]
		next = refs[limit-1].Cursor()
	}
	return refs, next, nil
}

// search runs a statement that selects refCols on the shard and reads
// the refs it returns.
func (s *shard) search(ctx context.Context, stmt string, args []any) ([]Ref, error) {
	res, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var refs []Ref
	for res.Next() {
		r, err := scanRef(res)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, res.Err()
}

// searchSQL builds the statement for q, which asks for one row more than
// the page so that Search knows whether a next page exists. It returns ""
// when q can match nothing.
//
// Every shape is planned so that a page costs about a page of rows, not
// every match: rows come in rowid order straight from the table, or from
// FTS5, which streams a MATCH in descending rowid order.
func searchSQL(q Query) (stmt string, args []any, limit int, err error) {
	limit = q.Limit
	switch {
	case limit < 0:
		return "", nil, 0, fmt.Errorf("%w: negative limit %d", ErrBadQuery, limit)
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	if q.From < 0 || q.To < 0 {
		return "", nil, 0, fmt.Errorf("%w: negative time bound", ErrBadQuery)
	}
	if q.From != 0 && q.To != 0 && q.From > q.To {
		return "", nil, 0, fmt.Errorf("%w: from %d is after to %d", ErrBadQuery, q.From, q.To)
	}
	var cursor int64 = -1
	if q.Cursor != "" {
		h, i, err := parseCursor(q.Cursor)
		if err != nil {
			return "", nil, 0, err
		}
		cursor = rowID(h, i)
	}
	// Device, namespaces, key, tag and text are one MATCH on the
	// full-text index; see termsOf.
	var match []string
	exact := func(kind byte, s string) { match = append(match, `terms : "`+term(kind, s)+`"`) }
	if q.DeviceUID != "" {
		exact('d', q.DeviceUID)
	}
	if q.Namespace != "" {
		exact('n', q.Namespace)
	}
	if q.Namespaces != nil {
		if len(q.Namespaces) == 0 {
			return "", nil, limit, nil
		}
		alts := make([]string, len(q.Namespaces))
		for i, ns := range q.Namespaces {
			alts[i] = `"` + term('n', ns) + `"`
		}
		match = append(match, `terms : (`+strings.Join(alts, " OR ")+`)`)
	}
	if q.Key != "" {
		exact('k', q.Key)
	}
	if q.Tag != "" {
		exact('t', q.Tag)
	}
	if q.Text != "" {
		m := matchExpr(q.Text)
		if m == "" {
			return "", nil, limit, nil
		}
		match = append(match, `body : (`+m+`)`)
	}

	var where []string
	if len(match) > 0 {
		where = append(where, `event_text MATCH ?`)
		args = append(args, strings.Join(match, " AND "))
		if cursor >= 0 {
			where = append(where, `event_text.rowid < ?`)
			args = append(args, cursor)
		}
	} else if cursor >= 0 {
		where = append(where, `e.id < ?`)
		args = append(args, cursor)
	}
	if q.From != 0 {
		where = append(where, `e.ts >= ?`)
		args = append(args, q.From)
	}
	if q.To != 0 {
		where = append(where, `e.ts <= ?`)
		args = append(args, q.To)
	}
	cond := ""
	if len(where) > 0 {
		cond = ` WHERE ` + strings.Join(where, ` AND `)
	}
	if len(match) > 0 {
		// CROSS JOIN keeps FTS5 the outer loop. Given a selective filter
		// on e, the planner would otherwise probe FTS5 once per row of e,
		// and each probe evaluates the whole MATCH.
		stmt = refCols + ` FROM event_text CROSS JOIN events e ON e.id = event_text.rowid` + cond +
			` ORDER BY event_text.rowid DESC LIMIT ?`
	} else {
		stmt = refSelect + cond + ` ORDER BY e.id DESC LIMIT ?`
	}
	args = append(args, limit+1)
	return stmt, args, limit, nil
}

// matchExpr turns user text into FTS5 phrases that cannot be a syntax
// error: every whitespace-separated word becomes a quoted string (FTS5
// escapes '"' by doubling it), and FTS5 ANDs them. Words without a letter
// or digit, such as "(", would tokenize to nothing and are dropped. It
// returns "" if no word is left.
func matchExpr(text string) string {
	var words []string
	// FTS5 reads the query as a C string: a NUL would end it mid-quote.
	text = strings.ReplaceAll(strings.ToValidUTF8(text, " "), "\x00", " ")
	for _, w := range strings.Fields(text) {
		if strings.IndexFunc(w, tokenRune) < 0 {
			continue
		}
		words = append(words, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
	}
	return strings.Join(words, " ")
}

// tokenRune reports whether the unicode61 tokenizer keeps r in a token:
// by default, letters, numbers and private-use characters.
func tokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}

func formatCursor(h uint64, i uint32) string {
	return strconv.FormatUint(h, 10) + "." + strconv.FormatUint(uint64(i), 10)
}

// parseCursor accepts only what formatCursor writes, so that a cursor has
// one spelling and a mangled one is refused rather than misread.
func parseCursor(s string) (uint64, uint32, error) {
	bad := func(why string) (uint64, uint32, error) {
		return 0, 0, fmt.Errorf("%w: cursor %q: %s", ErrBadQuery, s, why)
	}
	hs, is, ok := strings.Cut(s, ".")
	if !ok {
		return bad("want HEIGHT.INDEX")
	}
	h, err := strconv.ParseUint(hs, 10, 64)
	if err != nil || h > MaxHeight {
		return bad("bad height")
	}
	i, err := strconv.ParseUint(is, 10, 32)
	if err != nil {
		return bad("bad index")
	}
	if formatCursor(h, uint32(i)) != s {
		return bad("not in canonical form")
	}
	return h, uint32(i), nil
}

// eachPage is how many rows Each reads per query. Reading in pages keeps
// no statement open while fn runs, so fn may use the index too.
const eachPage = 1000

// Each calls fn for every event's ref in (height, index) order, stopping
// at fn's first error, which it returns unwrapped.
func (x *Index) Each(ctx context.Context, fn func(Ref) error) error {
	key := func(r Ref) int64 { return rowID(r.Height, r.Index) }
	return merge(x, key, func(s *shard, after int64) ([]Ref, error) {
		refs, err := s.search(ctx, refSelect+` WHERE e.id > ? ORDER BY e.id LIMIT ?`, []any{after, eachPage})
		if err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		return refs, nil
	}, fn)
}

// BlockRow is what the index holds for one block.
type BlockRow struct {
	Height     uint64
	Hash       chain.Hash
	MintTimeMs int64
	EntryCount int
	Tagged     int // entries with at least one tag
}

// EachBlock calls fn for every indexed block in height order, so that
// verify can check the block rows as Each lets it check event rows.
func (x *Index) EachBlock(ctx context.Context, fn func(BlockRow) error) error {
	key := func(b BlockRow) int64 { return int64(b.Height) }
	return merge(x, key, func(s *shard, after int64) ([]BlockRow, error) {
		blocks, err := s.blockRows(ctx, after)
		if err != nil {
			return nil, fmt.Errorf("read blocks: %w", err)
		}
		return blocks, nil
	}, fn)
}

// blockRows reads a page of block rows above height after.
func (s *shard) blockRows(ctx context.Context, after int64) ([]BlockRow, error) {
	res, err := s.db.QueryContext(ctx,
		`SELECT height, hash, mint_time_ms, entry_count, tagged FROM blocks WHERE height > ? ORDER BY height LIMIT ?`,
		after, eachPage)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var page []BlockRow
	for res.Next() {
		var (
			b    BlockRow
			h    int64
			hash []byte
		)
		if err := res.Scan(&h, &hash, &b.MintTimeMs, &b.EntryCount, &b.Tagged); err != nil {
			return nil, err
		}
		b.Height = uint64(h)
		if len(hash) != len(b.Hash) {
			return nil, fmt.Errorf("%w: block %d: hash is %d bytes", ErrCorrupt, h, len(hash))
		}
		b.Hash = chain.Hash(hash)
		page = append(page, b)
	}
	return page, res.Err()
}

// merge calls fn for every row of every shard in ascending key order,
// reading each shard a page of eachPage rows at a time (page(s, after)
// returns the shard's rows with keys above after, in key order). A key
// two shards hold is passed twice. It stops at fn's first error, which it
// returns unwrapped.
func merge[T any](x *Index, key func(T) int64, page func(s *shard, after int64) ([]T, error), fn func(T) error) error {
	var (
		bufs  [Shards][]T
		after [Shards]int64
		done  [Shards]bool
	)
	for k := range after {
		after[k] = -1
	}
	for {
		best := -1
		for k, s := range x.shards {
			if len(bufs[k]) == 0 && !done[k] {
				p, err := page(s, after[k])
				if err != nil {
					return err
				}
				done[k] = len(p) < eachPage
				if len(p) > 0 {
					after[k] = key(p[len(p)-1])
				}
				bufs[k] = p
			}
			if len(bufs[k]) > 0 && (best < 0 || key(bufs[k][0]) < key(bufs[best][0])) {
				best = k
			}
		}
		if best < 0 {
			return nil
		}
		if err := fn(bufs[best][0]); err != nil {
			return err
		}
		bufs[best] = bufs[best][1:]
	}
}

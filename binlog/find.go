package binlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Event types decoded to describe transactions (sql/log_event.h).
const (
	TypeTableMap      = 19
	TypeWriteRowsV1   = 23
	TypeUpdateRowsV1  = 24
	TypeDeleteRowsV1  = 25
	TypeWriteRowsV2   = 30
	TypeUpdateRowsV2  = 31
	TypeDeleteRowsV2  = 32
	TypeAnnotateRows  = 160
	TypeWriteRowsCV1  = 166 // *_COMPRESSED_EVENT_V1 (log_bin_compress=ON)
	TypeUpdateRowsCV1 = 167
	TypeDeleteRowsCV1 = 168
	TypeWriteRowsC    = 169
	TypeUpdateRowsC   = 170
	TypeDeleteRowsC   = 171
	TypeQueryC        = 165
)

// Statement kinds of a transaction.
const (
	KindDDL    = "DDL"
	KindInsert = "INSERT"
	KindUpdate = "UPDATE"
	KindDelete = "DELETE"
)

// Transaction describes one event group (transaction) of a binlog file:
// what find reports about it.
type Transaction struct {
	GTID GTID `json:"gtid"`
	// Time is the commit time (1 s resolution): the timestamp of the
	// commit event (Xid, COMMIT, or the DDL's Query event); it is the same
	// as the Gtid event's, which a time-based restore compares.
	Time     time.Time `json:"time"`
	ServerID uint32    `json:"server_id"`
	// Kinds lists the statement kinds in the order first seen.
	Kinds []string `json:"kinds"`
	// Tables lists the tables touched, "db.table", sorted.
	Tables []string `json:"tables"`
	// Rows is the number of rows written, changed or deleted by row
	// events (an UPDATE row counts once); RowsKnown is false when some
	// change could not be counted (statement-based DML, compressed row
	// events, a column type this reader does not size).
	Rows      int64 `json:"rows"`
	RowsKnown bool  `json:"rows_known"`
	// TableRows counts rows per table (row events only).
	TableRows map[string]int64 `json:"table_rows,omitempty"`
	// Statement is the SQL text of a DDL statement or of statement-based
	// DML (account statements with their credentials cut off), at most
	// MaxStatement bytes.
	Statement string `json:"statement,omitempty"`
	// Offset is where the transaction's Gtid event starts, End where its
	// last event ends (byte offsets in the file).
	Offset int64 `json:"offset"`
	End    int64 `json:"end"`
	// Complete is false for a transaction cut off by the end of the file
	// (the active file, or a crash).
	Complete bool `json:"complete"`
}

// MaxStatement bounds the statement text kept per transaction.
const MaxStatement = 4096

// maxTablesPerTx bounds what one transaction can make the reader keep.
const maxTablesPerTx = 4096

// Walk reads one binlog file and calls fn for every transaction, in file
// order. fn returns false to stop. Checksums are verified as by Reader. A
// file whose last event is cut short (the active file of a crashed
// server) is an error unless allowTruncated; the transaction cut off is
// then reported with Complete false.
func Walk(r io.Reader, allowTruncated bool, fn func(*Transaction) bool) error {
	br, err := NewReader(r)
	if err != nil {
		return err
	}
	w := &walker{tables: map[uint64]*tableMap{}}
	for {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if allowTruncated && isCutShort(err) {
				break
			}
			return err
		}
		tx, err := w.add(e)
		if err != nil {
			return err
		}
		if tx != nil && !fn(tx) {
			return nil
		}
	}
	if w.tx != nil {
		w.tx.finish()
		fn(w.tx)
	}
	return nil
}

// tableMap is a decoded Table_map event.
type tableMap struct {
	db, table string
	types     []byte
	meta      []uint16
}

// walker groups events into transactions.
type walker struct {
	postHeader []byte // post-header lengths from the Format_description, by type-1
	tables     map[uint64]*tableMap
	tx         *Transaction
	tableSet   map[string]bool
	standalone bool
}

func (w *walker) postLen(typ byte, def int) int {
	if int(typ) >= 1 && int(typ) <= len(w.postHeader) {
		return int(w.postHeader[typ-1])
	}
	return def
}

// add consumes one event; it returns a transaction when e completes one.
func (w *walker) add(e *Event) (*Transaction, error) {
	switch e.Type {
	case TypeFormatDescription:
		w.formatDescription(e)
		return nil, nil
	case TypeGtid:
		return w.gtid(e)
	case TypeTableMap:
		// Table maps are kept across transactions: row events refer to
		// them by id, and a server re-sends them per statement anyway.
		tm, id, err := w.parseTableMap(e)
		if err != nil {
			return nil, err
		}
		if len(w.tables) > maxTablesPerTx {
			clear(w.tables)
		}
		w.tables[id] = tm
		return nil, nil
	}
	tx := w.tx
	if tx == nil {
		return nil, nil // header events, or events before the first GTID
	}
	tx.End = e.Offset + int64(e.Size)
	switch e.Type {
	case TypeQuery, TypeQueryC:
		return w.query(e)
	case TypeXid, TypeXAPrepare:
		return w.commit(e), nil
	case TypeAnnotateRows:
		// The original SQL of the row events that follow.
		if tx.Statement == "" {
			tx.Statement = shorten(RedactStatement(string(e.Body)), MaxStatement)
		}
	case TypeWriteRowsV1, TypeWriteRowsV2, TypeWriteRowsCV1, TypeWriteRowsC:
		return nil, w.rows(e, KindInsert)
	case TypeUpdateRowsV1, TypeUpdateRowsV2, TypeUpdateRowsCV1, TypeUpdateRowsC:
		return nil, w.rows(e, KindUpdate)
	case TypeDeleteRowsV1, TypeDeleteRowsV2, TypeDeleteRowsCV1, TypeDeleteRowsC:
		return nil, w.rows(e, KindDelete)
	}
	return nil, nil
}

// formatDescription keeps the post-header lengths of a Format_description
// event: u16 version, char[50] server version, u32 create time, u8 header
// length, then one post-header length per event type. The checksum
// algorithm byte ends the body when checksums are on; with them off the
// Reader already removed the 4 checksum bytes.
func (w *walker) formatDescription(e *Event) {
	const fixed = 2 + 50 + 4 + 1
	if len(e.Body) > fixed+1 {
		w.postHeader = append([]byte(nil), e.Body[fixed:len(e.Body)-1]...)
	}
}

// gtid starts a transaction; it returns the previous one when that ended
// with an event that is not a commit this reader knows (XA PREPARE, XA
// COMMIT): groups never interleave, so a new Gtid event ends it.
func (w *walker) gtid(e *Event) (*Transaction, error) {
	var done *Transaction
	if w.tx != nil {
		w.tx.Complete = true
		w.tx.finish()
		done = w.tx
	}
	ge, err := ParseGtid(e)
	if err != nil {
		return nil, err
	}
	w.tx = &Transaction{GTID: ge.GTID, ServerID: e.ServerID, Time: eventTime(e), Offset: e.Offset, End: e.Offset + int64(e.Size), RowsKnown: true}
	w.tableSet = map[string]bool{}
	w.standalone = ge.Flags2&GtidStandalone != 0
	return done, nil
}

// query classifies a Query event of the current transaction: BEGIN,
// COMMIT/ROLLBACK, DDL or statement-based DML.
func (w *walker) query(e *Event) (*Transaction, error) {
	tx := w.tx
	if e.Type == TypeQueryC {
		tx.addKind(KindDDL)
		tx.RowsKnown = false
		return w.standaloneCommit(e), nil
	}
	db, stmt, err := w.parseQuery(e)
	if err != nil {
		return nil, err
	}
	switch kind := ClassifyStatement(stmt); kind {
	case "BEGIN":
	case "COMMIT", "ROLLBACK":
		return w.commit(e), nil
	case "":
		// SAVEPOINT, SET and the like: not a change by themselves; an
		// XA COMMIT or XA ROLLBACK of a prepared transaction is its
		// group's last event.
		if xaEnds(stmt) {
			return w.commit(e), nil
		}
	default:
		tx.addKind(kind)
		if kind != KindDDL {
			tx.RowsKnown = false // statement-based DML: the rows are not in the binlog
		}
		for _, t := range StatementTables(db, stmt) {
			w.addTable(t)
		}
		if tx.Statement == "" {
			tx.Statement = shorten(RedactStatement(stmt), MaxStatement)
		}
	}
	return w.standaloneCommit(e), nil
}

// standaloneCommit ends a standalone group (DDL) at its one statement.
func (w *walker) standaloneCommit(e *Event) *Transaction {
	if w.standalone {
		return w.commit(e)
	}
	return nil
}

func eventTime(e *Event) time.Time { return time.Unix(int64(e.Timestamp), 0).UTC() }

func (w *walker) commit(e *Event) *Transaction {
	tx := w.tx
	if t := eventTime(e); t.After(tx.Time) {
		tx.Time = t
	}
	tx.Complete = true
	tx.finish()
	w.tx = nil
	return tx
}

func (w *walker) addTable(name string) {
	if !w.tableSet[name] && len(w.tableSet) < maxTablesPerTx {
		w.tableSet[name] = true
		w.tx.Tables = append(w.tx.Tables, name)
	}
}

func (tx *Transaction) addKind(k string) {
	for _, have := range tx.Kinds {
		if have == k {
			return
		}
	}
	tx.Kinds = append(tx.Kinds, k)
}

func (tx *Transaction) finish() {
	sort.Strings(tx.Tables)
	if tx.Tables == nil {
		tx.Tables = []string{}
	}
	if tx.Kinds == nil {
		tx.Kinds = []string{}
	}
	if !tx.RowsKnown {
		tx.Rows = -1
	}
}

// Kind is the transaction's kind: one kind, or "A+B" when mixed.
func (tx *Transaction) Kind() string { return strings.Join(tx.Kinds, "+") }

// HasKind reports whether the transaction holds a statement of kind k.
func (tx *Transaction) HasKind(k string) bool {
	for _, have := range tx.Kinds {
		if strings.EqualFold(have, k) {
			return true
		}
	}
	return false
}

// parseQuery decodes a Query event: default database and statement text.
func (w *walker) parseQuery(e *Event) (db, stmt string, err error) {
	b := e.Body
	ph := w.postLen(TypeQuery, 13)
	if ph < 13 || len(b) < ph {
		return "", "", fmt.Errorf("%w: offset %d: Query event of %d bytes (post-header %d)", ErrFormat, e.Offset, len(b), ph)
	}
	dbLen := int(b[8])
	varsLen := int(binary.LittleEndian.Uint16(b[11:]))
	p := ph + varsLen
	if p+dbLen+1 > len(b) {
		return "", "", fmt.Errorf("%w: offset %d: Query event lengths (status %d, db %d) exceed its %d bytes", ErrFormat, e.Offset, varsLen, dbLen, len(b))
	}
	return string(b[p : p+dbLen]), string(b[p+dbLen+1:]), nil
}

// parseTableMap decodes a Table_map event.
func (w *walker) parseTableMap(e *Event) (*tableMap, uint64, error) {
	b := e.Body
	bad := func(what string) (*tableMap, uint64, error) {
		return nil, 0, fmt.Errorf("%w: offset %d: Table_map event: %s", ErrFormat, e.Offset, what)
	}
	ph := w.postLen(TypeTableMap, 8)
	if ph != 6 && ph != 8 {
		return bad(fmt.Sprintf("post-header length %d", ph))
	}
	if len(b) < ph {
		return bad("too short")
	}
	id := tableID(b[:ph-2])
	p := ph
	str := func() (string, bool) {
		if p >= len(b) {
			return "", false
		}
		n := int(b[p])
		if p+1+n+1 > len(b) {
			return "", false
		}
		s := string(b[p+1 : p+1+n])
		p += 1 + n + 1 // length, name, NUL
		return s, true
	}
	tm := &tableMap{}
	var ok bool
	if tm.db, ok = str(); !ok {
		return bad("database name")
	}
	if tm.table, ok = str(); !ok {
		return bad("table name")
	}
	n, k, ok := packedInt(b[p:])
	if !ok || n > uint64(len(b)) {
		return bad("column count")
	}
	p += k
	if p+int(n) > len(b) {
		return bad("column types")
	}
	tm.types = b[p : p+int(n) : p+int(n)]
	tm.types = append([]byte(nil), tm.types...)
	p += int(n)
	ml, k, ok := packedInt(b[p:])
	if !ok || ml > uint64(len(b)-p-k) {
		// Old servers may omit the metadata: the row images then cannot be
		// sized.
		tm.meta = nil
		return tm, id, nil
	}
	p += k
	meta := b[p : p+int(ml)]
	tm.meta = make([]uint16, n)
	mp := 0
	for i, t := range tm.types {
		size := metaSize(t)
		if mp+size > len(meta) {
			// A column type this reader sizes differently from the
			// server: the table's rows count as unknown (as for missing
			// metadata), the search goes on.
			tm.meta = nil
			return tm, id, nil
		}
		switch size {
		case 1:
			tm.meta[i] = uint16(meta[mp])
		case 2:
			if t == typeString || t == typeEnum || t == typeSet {
				tm.meta[i] = uint16(meta[mp])<<8 | uint16(meta[mp+1]) // real type, length
			} else {
				tm.meta[i] = binary.LittleEndian.Uint16(meta[mp:])
			}
		}
		mp += size
	}
	return tm, id, nil
}

func tableID(b []byte) uint64 {
	var id uint64
	for i := len(b) - 1; i >= 0; i-- {
		id = id<<8 | uint64(b[i])
	}
	return id
}

// packedInt decodes a length-encoded integer; k is its size in bytes.
func packedInt(b []byte) (v uint64, k int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c < 251:
		return uint64(c), 1, true
	case c == 252 && len(b) >= 3:
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, true
	case c == 253 && len(b) >= 4:
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case c == 254 && len(b) >= 9:
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, false
}

// rows counts a rows event into the current transaction.
func (w *walker) rows(e *Event, kind string) error {
	tx := w.tx
	tx.addKind(kind)
	compressed := e.Type >= TypeWriteRowsCV1 && e.Type <= TypeDeleteRowsC
	v2 := e.Type >= TypeWriteRowsV2 && e.Type <= TypeDeleteRowsV2
	ph := w.postLen(e.Type, map[bool]int{true: 10, false: 8}[v2])
	if ph < 6 || len(e.Body) < ph {
		return fmt.Errorf("%w: offset %d: rows event of %d bytes (post-header %d)", ErrFormat, e.Offset, len(e.Body), ph)
	}
	idLen := 6
	if ph == 6 {
		idLen = 4 // pre-5.1.4 layout: 4-byte table id
	}
	id := tableID(e.Body[:idLen])
	tm := w.tables[id]
	if tm == nil {
		// No Table_map for it in this file: the kind is known, the table
		// and the row count are not.
		tx.RowsKnown = false
		return nil
	}
	name := tm.db + "." + tm.table
	w.addTable(name)
	if compressed {
		tx.RowsKnown = false
		return nil
	}
	body := e.Body[ph:]
	if v2 {
		// Extra data: its length (u16, counting itself) ends the post-header.
		extra := int(binary.LittleEndian.Uint16(e.Body[ph-2:]))
		if extra < 2 || extra-2 > len(body) {
			return fmt.Errorf("%w: offset %d: rows event extra data of %d bytes", ErrFormat, e.Offset, extra)
		}
		body = body[extra-2:]
	}
	n, err := CountRows(body, tm.types, tm.meta, kind == KindUpdate)
	if err != nil {
		tx.RowsKnown = false
		return nil // the transaction is still reported, its row count unknown
	}
	tx.Rows += n
	if tx.TableRows == nil {
		tx.TableRows = map[string]int64{}
	}
	tx.TableRows[name] += n
	return nil
}

// Column types (include/mysql_com.h enum_field_types; MariaDB's compressed
// column types 140 and 141).
const (
	typeDecimal    = 0
	typeTiny       = 1
	typeShort      = 2
	typeLong       = 3
	typeFloat      = 4
	typeDouble     = 5
	typeNull       = 6
	typeTimestamp  = 7
	typeLongLong   = 8
	typeInt24      = 9
	typeDate       = 10
	typeTime       = 11
	typeDatetime   = 12
	typeYear       = 13
	typeNewDate    = 14
	typeVarchar    = 15
	typeBit        = 16
	typeTimestamp2 = 17
	typeDatetime2  = 18
	typeTime2      = 19
	typeVarcharC   = 140
	typeBlobC      = 141
	typeJSON       = 245
	typeNewDecimal = 246
	typeEnum       = 247
	typeSet        = 248
	typeTinyBlob   = 249
	typeMediumBlob = 250
	typeLongBlob   = 251
	typeBlob       = 252
	typeVarString  = 253
	typeString     = 254
	typeGeometry   = 255
)

// metaSize is how many metadata bytes a Table_map holds for a column type.
func metaSize(t byte) int {
	switch t {
	case typeFloat, typeDouble, typeBlob, typeBlobC, typeTinyBlob, typeMediumBlob, typeLongBlob, typeGeometry, typeJSON,
		typeTimestamp2, typeDatetime2, typeTime2:
		return 1
	case typeVarchar, typeVarcharC, typeVarString, typeBit, typeNewDecimal, typeString, typeEnum, typeSet:
		return 2
	}
	return 0
}

var dig2bytes = [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}

// lenPrefixed sizes a value stored as a k-byte little-endian length and
// that many bytes.
func lenPrefixed(b []byte, k int) (int, error) {
	if len(b) < k {
		return 0, io.ErrUnexpectedEOF
	}
	var n int
	for i := k - 1; i >= 0; i-- {
		n = n<<8 | int(b[i])
	}
	return k + n, nil
}

// fixedSizes are the column types whose values have one size.
var fixedSizes = map[byte]int{
	typeTiny: 1, typeYear: 1, typeShort: 2,
	typeInt24: 3, typeDate: 3, typeNewDate: 3, typeTime: 3,
	typeLong: 4, typeTimestamp: 4, typeLongLong: 8, typeDatetime: 8, typeNull: 0,
}

// valueSize returns the size of one non-NULL value of a column in a row
// image starting at b.
func valueSize(t byte, meta uint16, b []byte) (int, error) {
	if n, ok := fixedSizes[t]; ok {
		return n, nil
	}
	switch t {
	case typeFloat, typeDouble:
		if meta != 4 && meta != 8 {
			return 0, fmt.Errorf("float of %d bytes", meta)
		}
		return int(meta), nil
	case typeTimestamp2:
		return 4 + (int(meta)+1)/2, nil
	case typeDatetime2:
		return 5 + (int(meta)+1)/2, nil
	case typeTime2:
		return 3 + (int(meta)+1)/2, nil
	case typeNewDecimal:
		prec, scale := int(meta&0xff), int(meta>>8)
		if scale > prec || prec > 65 {
			return 0, fmt.Errorf("decimal(%d,%d)", prec, scale)
		}
		intg := prec - scale
		return intg/9*4 + dig2bytes[intg%9] + scale/9*4 + dig2bytes[scale%9], nil
	case typeBit:
		bits, bytes := int(meta&0xff), int(meta>>8)
		if bits > 0 {
			bytes++
		}
		return bytes, nil
	case typeVarchar, typeVarcharC, typeVarString:
		if meta > 255 {
			return lenPrefixed(b, 2)
		}
		return lenPrefixed(b, 1)
	case typeBlob, typeBlobC, typeTinyBlob, typeMediumBlob, typeLongBlob, typeGeometry, typeJSON:
		if meta < 1 || meta > 4 {
			return 0, fmt.Errorf("blob length of %d bytes", meta)
		}
		return lenPrefixed(b, int(meta))
	case typeEnum, typeSet:
		return int(meta & 0xff), nil
	case typeString:
		return stringSize(meta, b)
	}
	return 0, fmt.Errorf("column type %d", t)
}

// stringSize sizes a MYSQL_TYPE_STRING value. meta = (byte0 << 8) | byte1;
// byte0 is the real type, with bits 4-5 inverted carrying bits 8-9 of the
// length of a long CHAR.
func stringSize(meta uint16, b []byte) (int, error) {
	b0, b1 := int(meta>>8), int(meta&0xff)
	length := b1
	if b0 != 0 {
		if b0&0x30 != 0x30 {
			length = b1 | ((b0&0x30)^0x30)<<4
			b0 |= 0x30
		}
		switch b0 {
		case typeEnum, typeSet:
			return length, nil
		case typeString:
		default:
			return 0, fmt.Errorf("string of real type %d", b0)
		}
	}
	if length > 255 {
		return lenPrefixed(b, 2)
	}
	return lenPrefixed(b, 1)
}

// CountRows counts the rows of a rows event's body after its post-header
// (and v2 extra data): column count, present-columns bitmap(s), then row
// images, each a NULL bitmap over the present columns and the non-NULL
// values. update is set for Update_rows events (two bitmaps, two images a
// row). Every value is sized with the column types and metadata of the
// table's Table_map; the images must end exactly at the end of the body,
// so a count is either exact or an error.
func CountRows(b []byte, types []byte, meta []uint16, update bool) (int64, error) {
	if meta == nil && len(types) > 0 {
		return 0, fmt.Errorf("%w: table map without column metadata", ErrFormat)
	}
	n, k, ok := packedInt(b)
	if !ok || n != uint64(len(types)) {
		return 0, fmt.Errorf("%w: rows event has %d columns, its table map %d", ErrFormat, n, len(types))
	}
	b = b[k:]
	bm := (int(n) + 7) / 8
	nb := 1
	if update {
		nb = 2
	}
	if len(b) < nb*bm {
		return 0, fmt.Errorf("%w: rows event column bitmaps cut short", ErrFormat)
	}
	present := [][]byte{b[:bm], b[:bm]}
	if update {
		present[1] = b[bm : 2*bm]
	}
	b = b[nb*bm:]
	var rows int64
	for len(b) > 0 {
		before := len(b)
		for img := 0; img < nb; img++ {
			var err error
			if b, err = skipImage(b, types, meta, present[img]); err != nil {
				return 0, fmt.Errorf("%w: row %d: %v", ErrFormat, rows+1, err)
			}
		}
		if len(b) == before {
			// Only possible with no column present: a row then takes no
			// bytes and the count would be unbounded.
			return 0, fmt.Errorf("%w: rows event with empty row images", ErrFormat)
		}
		rows++
	}
	return rows, nil
}

// skipImage returns b after one row image.
func skipImage(b []byte, types []byte, meta []uint16, present []byte) ([]byte, error) {
	var cols int
	for i := range types {
		if present[i/8]&(1<<(i%8)) != 0 {
			cols++
		}
	}
	nullLen := (cols + 7) / 8
	if len(b) < nullLen {
		return nil, io.ErrUnexpectedEOF
	}
	nulls := b[:nullLen]
	b = b[nullLen:]
	j := 0
	for i, t := range types {
		if present[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		isNull := nulls[j/8]&(1<<(j%8)) != 0
		j++
		if isNull {
			continue
		}
		size, err := valueSize(t, meta[i], b)
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", i+1, err)
		}
		if size > len(b) {
			return nil, fmt.Errorf("column %d: value of %d bytes, %d left", i+1, size, len(b))
		}
		b = b[size:]
	}
	return b, nil
}

// ClassifyStatement returns the kind of a Query event's statement: "BEGIN",
// "COMMIT" or "ROLLBACK" for transaction control, INSERT/UPDATE/DELETE for
// statement-based DML, "" for statements that change nothing by themselves
// (SAVEPOINT, SET, XA ...), otherwise DDL.
func ClassifyStatement(stmt string) string {
	w := strings.ToUpper(firstWord(stmt))
	switch w {
	case "BEGIN", "COMMIT", "ROLLBACK":
		if w == "ROLLBACK" && strings.Contains(strings.ToUpper(stmt), " TO ") {
			return "" // ROLLBACK TO SAVEPOINT
		}
		return w
	case "INSERT", "REPLACE", "LOAD":
		return KindInsert
	case "UPDATE":
		return KindUpdate
	case "DELETE":
		return KindDelete
	case "SAVEPOINT", "RELEASE", "SET", "XA", "":
		return ""
	}
	return KindDDL
}

// skipSpaceAndComments drops leading white space and /* */, -- and #
// comments (MariaDB keeps a client's leading comment in the binlog).
func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "/*"):
			if strings.HasPrefix(s, "/*!") || strings.HasPrefix(s, "/*M!") {
				// Executable comment: its content is part of the statement.
				end := strings.Index(s, "*/")
				if end < 0 {
					return ""
				}
				inner := strings.TrimLeft(s[2:end], "!M0123456789")
				s = inner + " " + s[end+2:]
				continue
			}
			end := strings.Index(s, "*/")
			if end < 0 {
				return ""
			}
			s = s[end+2:]
		case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
			end := strings.IndexByte(s, '\n')
			if end < 0 {
				return ""
			}
			s = s[end+1:]
		case setStatementRE.MatchString(s):
			// SET STATEMENT var=value[, …] FOR <statement>: the
			// statement after FOR is what the transaction did.
			s = s[len(setStatementRE.FindString(s)):]
		default:
			return s
		}
	}
}

// xaEnds reports whether stmt ends the group of an XA COMMIT or XA
// ROLLBACK of a prepared transaction (not XA COMMIT … ONE PHASE, whose
// group ends with an Xid).
func xaEnds(stmt string) bool {
	s := skipSpaceAndComments(stmt)
	return xaEndRE.MatchString(s) && !onePhaseRE.MatchString(s)
}

var (
	xaEndRE    = regexp.MustCompile(`(?is)^XA\s+(?:COMMIT|ROLLBACK)\b`)
	onePhaseRE = regexp.MustCompile(`(?i)\bONE\s+PHASE\b`)
)

// setStatementRE matches a leading "SET STATEMENT … FOR " (up to the first
// FOR that stands as a word).
var setStatementRE = regexp.MustCompile(`(?is)^SET\s+STATEMENT\s.*?\sFOR\s+`)

func firstWord(s string) string {
	s = skipSpaceAndComments(s)
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		return s
	}
	return s[:end]
}

// ident matches one optionally quoted identifier, optionally qualified.
const identRE = "(?:`(?:[^`]|``)+`|[\\p{L}\\p{N}_$]+)"

var (
	tableListRE = regexp.MustCompile(`(?is)^(?:(?:DROP|CREATE(?:\s+OR\s+REPLACE)?)\s+(?:TEMPORARY\s+)?TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?|ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|RENAME\s+TABLES?|(?:OPTIMIZE|ANALYZE|REPAIR)\s+(?:NO_WRITE_TO_BINLOG\s+|LOCAL\s+)?TABLE|(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*(?:\s+INTO)?|UPDATE(?:\s+(?:LOW_PRIORITY|IGNORE))*|DELETE(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE))*\s+FROM)\s+`)
	tableNameRE = regexp.MustCompile(`(?i)^\s*(` + identRE + `(?:\s*\.\s*` + identRE + `)?)(\s*,|\s+TO\s+|)`)
	dbStmtRE    = regexp.MustCompile(`(?is)^DROP\s+(?:DATABASE|SCHEMA)(?:\s+IF\s+EXISTS)?\s+(` + identRE + `)`)
)

// StatementTables returns the tables ("db.table") a DDL or statement-based
// DML statement names, as far as its leading clause shows them: DROP,
// CREATE, ALTER, TRUNCATE, RENAME, INSERT/REPLACE INTO, UPDATE, DELETE
// FROM; "db.*" for DROP DATABASE (it drops every table of db). Unqualified names are in db,
// the statement's default database. Other statements return nil.
func StatementTables(db, stmt string) []string {
	s := skipSpaceAndComments(stmt)
	if m := dbStmtRE.FindStringSubmatch(s); m != nil {
		return []string{unquote(m[1]) + ".*"}
	}
	loc := tableListRE.FindStringIndex(s)
	if loc == nil {
		return nil
	}
	s = s[loc[1]:]
	var out []string
	for len(out) < 64 {
		m := tableNameRE.FindStringSubmatch(s)
		if m == nil {
			break
		}
		out = append(out, qualify(db, m[1]))
		s = s[len(m[0]):]
		if m[2] == "" {
			break
		}
	}
	return out
}

func qualify(db, name string) string {
	parts := splitIdent(name)
	if len(parts) == 2 {
		return parts[0] + "." + parts[1]
	}
	return db + "." + parts[0]
}

// splitIdent splits "a.b" / "`a`.`b`" into unquoted parts.
func splitIdent(name string) []string {
	var parts []string
	for len(name) > 0 {
		name = strings.TrimSpace(name)
		var part string
		if strings.HasPrefix(name, "`") {
			end := 1
			for end < len(name) {
				if name[end] == '`' {
					if end+1 < len(name) && name[end+1] == '`' {
						end += 2
						continue
					}
					break
				}
				end++
			}
			part, name = name[:min(end+1, len(name))], name[min(end+1, len(name)):]
		} else {
			i := strings.IndexByte(name, '.')
			if i < 0 {
				i = len(name)
			}
			part, name = name[:i], name[i:]
		}
		parts = append(parts, unquote(strings.TrimSpace(part)))
		name = strings.TrimLeft(strings.TrimSpace(name), ".")
	}
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	if len(parts) == 0 {
		parts = []string{""}
	}
	return parts
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

var accountRE = regexp.MustCompile(`(?is)^(?:CREATE(?:\s+OR\s+REPLACE)?\s+(?:USER|ROLE|SERVER)|ALTER\s+(?:USER|SERVER)|GRANT|SET\s+PASSWORD|CHANGE\s+MASTER)\b`)

// RedactStatement cuts the credentials off account statements (CREATE
// USER … IDENTIFIED BY 'pw', GRANT … IDENTIFIED BY, SET PASSWORD, CREATE
// SERVER … OPTIONS (PASSWORD …)): everything after the account name is
// replaced, so no password is printed or logged.
func RedactStatement(stmt string) string {
	s := skipSpaceAndComments(stmt)
	if !accountRE.MatchString(s) {
		return stmt
	}
	// Upper-case ASCII only: strings.ToUpper can change the byte length
	// of other letters, and the offsets found in up cut s.
	up := asciiUpper(s)
	cut := len(s)
	for _, kw := range []string{"IDENTIFIED", "PASSWORD", "OPTIONS", "'", "\""} {
		if i := strings.Index(up, kw); i >= 0 && i < cut {
			if kw == "PASSWORD" && strings.HasPrefix(up, "SET PASSWORD") && i == 4 {
				continue
			}
			cut = i
		}
	}
	if strings.HasPrefix(up, "SET PASSWORD") {
		if i := strings.IndexByte(s, '='); i >= 0 && i < cut {
			cut = i + 1
		}
	}
	if cut == len(s) {
		return s
	}
	return strings.TrimRight(s[:cut], " ") + " <credentials redacted>"
}

// asciiUpper upper-cases a-z and keeps every other byte, so offsets in
// the result are offsets in s.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Do not cut a UTF-8 sequence in half.
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// Filter selects transactions. Empty fields select everything.
type Filter struct {
	// Tables: "db.table", "table" (in any database) or "db.*".
	Tables []string
	// Kinds: DDL, INSERT, UPDATE, DELETE (any of them).
	Kinds []string
	// Since (inclusive) and Until (exclusive) bound the commit time.
	Since, Until time.Time
}

// ValidKind reports whether k names a kind Filter understands.
func ValidKind(k string) bool {
	switch strings.ToUpper(k) {
	case KindDDL, KindInsert, KindUpdate, KindDelete:
		return true
	}
	return false
}

// Match reports whether tx passes the filter. Names compare case-
// insensitively. A DDL statement whose tables could not be parsed matches
// a table when its text names it.
func (f *Filter) Match(tx *Transaction) bool {
	if !f.Since.IsZero() && tx.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !tx.Time.Before(f.Until) {
		return false
	}
	if len(f.Kinds) > 0 {
		ok := false
		for _, k := range f.Kinds {
			ok = ok || tx.HasKind(k)
		}
		if !ok {
			return false
		}
	}
	if len(f.Tables) == 0 {
		return true
	}
	for _, pat := range f.Tables {
		pdb, ptab, qualified := strings.Cut(pat, ".")
		if !qualified {
			pdb, ptab = "", pdb
		}
		for _, t := range tx.Tables {
			db, tab, _ := strings.Cut(t, ".")
			if pdb != "" && !strings.EqualFold(db, pdb) {
				continue
			}
			if ptab == "*" || (tab == "*" && pdb != "") || strings.EqualFold(tab, ptab) {
				return true
			}
		}
		if len(tx.Tables) == 0 && tx.HasKind(KindDDL) && ptab != "*" && strings.Contains(strings.ToLower(tx.Statement), strings.ToLower(ptab)) {
			return true
		}
	}
	return false
}

package gbtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// Writer inserts numbered rows (id 1, 2, …; columns id, at, note) into a
// table on one node, one transaction per row on one connection, until
// Finish, and records the GTID sequence number each row committed with.
type Writer struct {
	mu      sync.Mutex
	seqs    []uint64      // seqs[i] is the GTID seq (domain 7) of row id i+1
	changed chan struct{} // closed at the next committed row; see WaitRows
	stop    chan struct{}
	done    chan error
	exited  chan struct{} // closed when the writing goroutine returns
}

// StartWriter creates db.table and starts writing, pausing between rows.
func StartWriter(t testing.TB, n *cluster.Node, table string, pause time.Duration) *Writer {
	t.Helper()
	ctx := context.Background()
	db, _, _ := strings.Cut(table, ".")
	if err := n.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db+"; CREATE TABLE "+table+
		" (id INT PRIMARY KEY, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), note VARCHAR(100)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	w := &Writer{stop: make(chan struct{}), done: make(chan error, 1), exited: make(chan struct{})}
	conn, err := n.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.exited)
		defer conn.Close()
		for i := 1; ; i++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			if _, err := conn.ExecContext(ctx, "INSERT INTO "+table+" (id, note) VALUES (?, REPEAT('r', 80))", i); err != nil {
				w.done <- fmt.Errorf("insert row %d: %w", i, err)
				return
			}
			var g string
			if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
				w.done <- err
				return
			}
			var seq uint64
			if _, err := fmt.Sscanf(g[strings.LastIndex(g, "-")+1:], "%d", &seq); err != nil || !strings.HasPrefix(g, "7-") {
				w.done <- fmt.Errorf("last_gtid %q: %v", g, err)
				return
			}
			w.mu.Lock()
			w.seqs = append(w.seqs, seq)
			if w.changed != nil {
				close(w.changed)
				w.changed = nil
			}
			w.mu.Unlock()
			time.Sleep(pause)
		}
	}()
	return w
}

// Finish stops the writer and fails the test if a write failed.
func (w *Writer) Finish(t testing.TB) {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
}

// WaitRows waits until n more rows have committed than when it was
// called: a test that needs rows between two steps waits for them, not
// for a time. It fails the test if the writer stopped; the 10-minute
// bound is only a safety net.
func (w *Writer) WaitRows(t testing.TB, n int) {
	t.Helper()
	safety := time.NewTimer(10 * time.Minute)
	defer safety.Stop()
	w.mu.Lock()
	want := len(w.seqs) + n
	w.mu.Unlock()
	for {
		w.mu.Lock()
		have := len(w.seqs)
		if have >= want {
			w.mu.Unlock()
			return
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-w.exited:
			err := <-w.done
			w.done <- err // for Finish
			t.Fatalf("the writer stopped after %d rows while the test waited for %d: %v", have, want, err)
		case <-safety.C:
			t.Fatalf("the writer committed %d rows in 10 min, the test waited for %d", have, want)
		}
	}
}

// Seqs returns the GTID sequence numbers of the rows written so far, in
// row id order.
func (w *Writer) Seqs() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.seqs...)
}

// RowsAt returns how many rows had committed at GTID seq.
func (w *Writer) RowsAt(seq uint64) int {
	n := 0
	for _, s := range w.Seqs() {
		if s <= seq {
			n++
		}
	}
	return n
}

// Command wsrep_sst_gosst is the program mysqld runs for
// wsrep_sst_method=gosst, on the joiner and on the donor. It speaks the
// mysqld SST-script contract: arguments in, "ready"/position or
// "done" lines on stdout, log lines on stderr (the server's error log),
// and errno-style exit codes. The work is done by package sst.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gosst/gosst/internal/version"
	"github.com/gosst/gosst/sst"
	"golang.org/x/sync/errgroup"
)

func main() {
	argv := os.Args[1:]
	if len(argv) == 1 && (argv[0] == "--version" || argv[0] == "version") {
		fmt.Printf("wsrep_sst_gosst %s\n", version.String())
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	ran := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%w (%v)", sst.ErrInterrupted, s))
		case <-ran:
		}
		return nil
	})
	// SIGPIPE on stdout (mysqld gone) must surface as a write error.
	signal.Ignore(syscall.SIGPIPE)
	code := sst.Run(ctx, argv, sst.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	close(ran)
	_ = g.Wait()
	cancel(nil)
	os.Exit(code)
}

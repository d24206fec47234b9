package sst

import "time"

// A failed joiner waits for its donor to hang up before it exits
// (awaitDonorExit); that is for Galera, and the unit tests have none.
func init() {
	donorExitWait = 200 * time.Millisecond
	donorExitGrace = 10 * time.Millisecond
}

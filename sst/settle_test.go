package sst

import "time"

// The donor's pause before it reports a failure (failureSettle) is for
// Galera; the unit tests have no Galera and would only wait longer.
func init() { failureSettle = 10 * time.Millisecond }

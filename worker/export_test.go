package worker

import "time"

// SetHoldLimit sets how long an item leased ahead is held behind a long
// command, until the test ends.
func SetHoldLimit(t interface{ Cleanup(func()) }, d time.Duration) {
	old := holdLimit
	holdLimit = d
	t.Cleanup(func() { holdLimit = old })
}

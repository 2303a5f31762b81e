package master

import "time"

// SetProgressClock makes p read the time from now, so that a test can
// show the passing of minutes without waiting for them.
func SetProgressClock(p *Progress, now func() time.Time) { p.now = now }

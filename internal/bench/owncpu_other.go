//go:build !linux

package bench

import "errors"

// awaitExit: only Linux's waitid can wait without reaping.
func awaitExit(int) error { return errors.ErrUnsupported }

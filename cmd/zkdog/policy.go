package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/duration"
	"github.com/zkdog/zkdog/internal/protocol"
)

// policyFlags reads the policies of master and init into the job record,
// where every worker finds them.
func policyFlags(c *cli.Context) (protocol.Policy, error) {
	var p protocol.Policy
	var err error
	if c.String(flagRetryOn) != protocol.RetryVanished {
		if p.RetryOn, err = protocol.ParseRetryOn(c.String(flagRetryOn)); err != nil {
			return p, usagef("--%s: %v", flagRetryOn, err)
		}
	}
	if codes := c.String(flagNoRetryExit); codes != "" {
		if err := protocol.CheckExitCodes(codes); err != nil {
			return p, usagef("--%s: %v", flagNoRetryExit, err)
		}
		p.NoRetryExit = codes
	}
	if d := durationOf(c, flagRetryDelay); d < 0 {
		return p, usagef("--%s %v is negative", flagRetryDelay, d)
	} else {
		p.RetryDelayMillis = d.Milliseconds()
	}
	switch h := c.String(flagOnHang); h {
	case protocol.OnHangAbort:
	case protocol.OnHangStall:
		p.OnHang = h
	default:
		return p, usagef("--%s %q: give abort or stall", flagOnHang, h)
	}
	if p.ItemTimeoutMillis, p.ItemTimeoutPercent, err = parseTimeout(c.String(flagItemTimeout)); err != nil {
		return p, usagef("--%s: %v", flagItemTimeout, err)
	}
	return p, nil
}

// parseTimeout reads D or P%.
func parseTimeout(s string) (ms int64, pct int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if n, ok := strings.CutSuffix(s, "%"); ok {
		pct, err := strconv.Atoi(n)
		if err != nil || pct < 100 {
			return 0, 0, fmt.Errorf("%q: give a percentage of at least 100%%, of the median time of the items that succeeded", s)
		}
		return 0, pct, nil
	}
	d, err := duration.Parse(s)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: give a duration such as 30m, or a percentage such as 300%%", s)
	}
	return d.Milliseconds(), 0, nil
}

// maxFailures reads --max-failures N or P% for a job of items.
func maxFailures(c *cli.Context, items int) (int, error) {
	s := c.String(flagMaxFailures)
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "%"); ok {
		pct, err := strconv.ParseFloat(n, 64)
		if err != nil || pct <= 0 || pct > 100 {
			return 0, usagef("--%s %q: give a count, or a percentage of the items above 0%% and at most 100%%", flagMaxFailures, s)
		}
		return max(1, int(float64(items)*pct/100+0.999999)), nil
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 1 {
		return 0, usagef("--%s %q: give a count of at least 1, or a percentage such as 5%%", flagMaxFailures, s)
	}
	return k, nil
}

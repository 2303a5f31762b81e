package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/zkdog/zkdog/internal/zkserver"
)

// Counters are the numeric lines of ZooKeeper's mntr four-letter word.
//
// Of ZooKeeper 3.8's, these count requests exactly, since every request
// that reaches FinalRequestProcessor adds one sample to a latency summary:
//
//   - zk_cnt_updatelatency: write requests (create, setData, delete, a
//     whole multi as one), failed ones too, plus session creation and
//     closing;
//   - zk_cnt_readlatency: reads (getData, exists, getChildren...), and
//     pings, which carry no transaction either (go-zookeeper pings every
//     third of the session timeout, busy or not).
//
// Four-letter words themselves are not requests and count in neither.
type Counters map[string]float64

// Counter names the benchmarks use.
const (
	Writes = "zk_cnt_updatelatency"
	Reads  = "zk_cnt_readlatency"
	// The sums of the same summaries, in milliseconds: with the counts
	// they give the exact mean latency between two readings, which the
	// percentiles (over a decaying sample of the whole uptime) cannot.
	WriteMsSum  = "zk_sum_updatelatency"
	ReadMsSum   = "zk_sum_readlatency"
	ZnodeCount  = "zk_znode_count"
	DataSize    = "zk_approximate_data_size"
	PacketsRcvd = "zk_packets_received"
)

// Mntr reads the server's counters.
func Mntr(ctx context.Context, addr string) (Counters, error) {
	out, err := zkserver.FourLetter(ctx, addr, "mntr")
	if err != nil {
		return nil, fmt.Errorf("bench: mntr: %w", err)
	}
	return parseMntr(out), nil
}

func parseMntr(out string) Counters {
	c := Counters{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			c[k] = f
		}
	}
	return c
}

// MeanLatency is the server-side mean latency, in milliseconds, of the
// requests counted in a delta by Since: Writes with WriteMsSum, Reads with
// ReadMsSum. NaN when there were none.
func (c Counters) MeanLatency(count, sum string) float64 {
	if c[count] <= 0 {
		return math.NaN()
	}
	return c[sum] / c[count]
}

// Since is c minus an earlier reading, for the counters in both.
func (c Counters) Since(earlier Counters) Counters {
	d := Counters{}
	for k, v := range c {
		if e, ok := earlier[k]; ok {
			d[k] = v - e
		}
	}
	return d
}

// Client is one client connection as the cons four-letter word lists it.
type Client struct {
	Session  int64 // sid
	Received int64 // recved: requests and pings from the client
	Sent     int64
}

// Cons lists the server's client connections. Its per-connection packet
// counts are how the load of one client is told apart from everyone
// else's: mntr only has server-wide totals.
func Cons(ctx context.Context, addr string) ([]Client, error) {
	out, err := zkserver.FourLetter(ctx, addr, "cons")
	if err != nil {
		return nil, fmt.Errorf("bench: cons: %w", err)
	}
	return parseCons(out), nil
}

// parseCons reads lines such as
//
//	/127.0.0.1:41234[1](queued=0,recved=12,sent=12,sid=0x1000a3c0f0000,lop=PING,...)
//
// skipping the cons connection itself, which has no session.
func parseCons(out string) []Client {
	var cs []Client
	for _, line := range strings.Split(out, "\n") {
		open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || close < open {
			continue
		}
		var c Client
		hasSid := false
		for _, kv := range strings.Split(line[open+1:close], ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "sid":
				if n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64); err == nil {
					c.Session, hasSid = int64(n), true
				}
			case "recved":
				c.Received, _ = strconv.ParseInt(v, 10, 64)
			case "sent":
				c.Sent, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if hasSid {
			cs = append(cs, c)
		}
	}
	return cs
}

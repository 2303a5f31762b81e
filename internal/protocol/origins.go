package protocol

import (
	"encoding/json"
	"fmt"
)

// Origins is the data of the item and result buckets of a job made from
// another job's items (zkdog init --from): for each item of the bucket, in
// order, its index in the first job it came from. Results and joblogs name
// an item by that index, so the runs of one piece of work join on it. The
// buckets of other jobs hold no data: an item's origin is its own index.
type Origins struct {
	V     int   `json:"v"`
	Index []int `json:"index"`
}

// EncodeOrigins is the data of a bucket whose items came from index.
func EncodeOrigins(index []int) []byte {
	return Encode(Origins{V: Version, Index: index})
}

// DecodeOrigins reads a bucket's data: nil for a bucket without origins.
func DecodeOrigins(b []byte) ([]int, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var o Origins
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("bad origins record: %v", err)
	}
	if o.V != Version {
		return nil, fmt.Errorf("%w %d in an origins record", ErrUnknownVersion, o.V)
	}
	for _, i := range o.Index {
		if i < 0 {
			return nil, fmt.Errorf("bad origins record: index %d", i)
		}
	}
	return o.Index, nil
}

// OriginIn is the origin of item index, given its bucket's origins (nil:
// the item's own index).
func OriginIn(origins []int, index int) int {
	if k := index % BucketSize; k < len(origins) {
		return origins[k]
	}
	return index
}

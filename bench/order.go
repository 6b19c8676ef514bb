package bench

import (
	"fmt"
	"strings"

	"github.com/cohort-vs/cohort/engine"
)

// OrderNames lists the orderings vsbench sends with, as its flags and the
// member logs name them.
var OrderNames = []string{"unordered", "fifo", "causal", "total"}

// orderChoices is OrderNames for error messages.
const orderChoices = "unordered, fifo, causal or total"

// ParseOrder returns the engine ordering called name, or-ed with
// engine.Safe when safe is set.
func ParseOrder(name string, safe bool) (engine.Ordering, error) {
	for i, s := range OrderNames {
		if s == name {
			o := engine.Ordering(i)
			if safe {
				o |= engine.Safe
			}
			return o, nil
		}
	}
	return 0, fmt.Errorf("order is %q; use %s", name, orderChoices)
}

// ParseOrders reads a comma-separated list of orderings (the default
// mode's --order): each one of OrderNames, none twice.
func ParseOrders(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if _, err := ParseOrder(s, false); err != nil {
			if strings.Contains(list, ",") {
				return nil, fmt.Errorf("order %q in %q; use %s, or a comma-separated list of them", s, list, orderChoices)
			}
			return nil, err
		}
		for _, o := range out {
			if o == s {
				return nil, fmt.Errorf("order %q twice in %q", s, list)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// orderLabel names an ordering with its safe flag, as engine.Ordering's
// String does: "total+safe".
func orderLabel(name string, safe bool) string {
	if safe {
		return name + "+safe"
	}
	return name
}

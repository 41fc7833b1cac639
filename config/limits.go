package config

// Limits configures service-limit headroom and ELB pre-warm (see limits/).
type Limits struct{}

func (l *Limits) setDefaults()                  {}
func (l *Limits) check(c *checker, path string) {}

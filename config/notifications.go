package config

// Notifications configures where medic's events are sent (see alerts/).
type Notifications struct{}

func (n *Notifications) setDefaults()                  {}
func (n *Notifications) check(c *checker, path string) {}

// Command medic-rules prints medic's Prometheus rule file for parameters
// other than the checked-in defaults (alerts/rules/medic.rules.yml), e.g. a
// different endpoint SLO or job selector:
//
//	go run ./alerts/rules/cmd/medic-rules -slo 0.995 -selector 'job="medic-prod"' > medic.rules.yml
//
// Check the result with `promtool check rules medic.rules.yml`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/medic-sre/medic/alerts/rules"
)

func main() { os.Exit(run()) }

func run() int {
	p := rules.Default()
	fs := flag.NewFlagSet("medic-rules", flag.ContinueOnError)
	fs.StringVar(&p.Selector, "selector", p.Selector, "label matchers selecting medic's series, without braces")
	fs.Float64Var(&p.SLO, "slo", p.SLO, "endpoint availability objective, as a fraction (0.999 = 99.9%)")
	fs.StringVar(&p.RunbookURL, "runbook-url", p.RunbookURL, "URL of docs/runbook.md; alerts append #anchor")
	fs.IntVar(&p.HealRateHighPerHour, "heal-rate-high", p.HealRateHighPerHour, "instances marked per service per hour above which MedicHealRateHigh fires")
	fs.Float64Var(&p.AWSErrorRatio, "aws-error-ratio", p.AWSErrorRatio, "share of failed AWS calls per operation above which MedicAWSAPIErrors fires")
	fs.DurationVar(&p.DiscoveryStale, "discovery-stale", p.DiscoveryStale, "fleet age above which MedicDiscoveryStale fires (at least 3× discovery_interval)")

	fs.DurationVar(&p.ExhaustionHorizon, "exhaustion-horizon", p.ExhaustionHorizon, "forecast time to quota exhaustion below which MedicQuotaExhaustionForecast fires")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	b, err := rules.Marshal(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := os.Stdout.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

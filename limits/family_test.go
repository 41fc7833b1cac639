package limits

import (
	"maps"
	"strings"
	"testing"
)

// TestFamilyQuotas maps one instance type of every current family prefix
// to the On-Demand and Spot vCPU quota it draws on.
func TestFamilyQuotas(t *testing.T) {
	const (
		stdOD, stdSpot = "ec2/L-1216C47A", "ec2/L-34B43A08"
		gOD, gSpot     = "ec2/L-DB2E81BA", "ec2/L-3819A6DF"
		pOD, pSpot     = "ec2/L-417A185B", "ec2/L-7212CCBC"
		p5Spot         = "ec2/L-C4BD4855"
		xOD, xSpot     = "ec2/L-7295265B", "ec2/L-E3A00192"
		fOD, fSpot     = "ec2/L-74FC7D96", "ec2/L-88CF9481"
		infOD, infSpot = "ec2/L-1945791B", "ec2/L-B5D1601B"
		trnOD, trnSpot = "ec2/L-2C3B7624", "ec2/L-6B0D517C"
		dlOD, dlSpot   = "ec2/L-6E869C2A", "ec2/L-85EED4F7"
		hpcOD          = "ec2/L-F7808C92"
		hmOD           = "ec2/L-43DA4232"
	)
	for _, tc := range []struct {
		desc, typ, od, spot string
	}{
		{"a: Graviton A1", "a1.large", stdOD, stdSpot},
		{"c", "c5.4xlarge", stdOD, stdSpot},
		{"c with suffix letters", "c7gn.xlarge", stdOD, stdSpot},
		{"d: dense storage", "d3en.xlarge", stdOD, stdSpot},
		{"h", "h1.2xlarge", stdOD, stdSpot},
		{"i", "i4i.large", stdOD, stdSpot},
		{"i: im4gn", "im4gn.large", stdOD, stdSpot},
		{"i: is4gen", "is4gen.medium", stdOD, stdSpot},
		{"m", "m7i-flex.large", stdOD, stdSpot},
		{"r", "r8gd.xlarge", stdOD, stdSpot},
		{"t", "t3.micro", stdOD, stdSpot},
		{"z", "z1d.large", stdOD, stdSpot},
		{"dl is DL, not D", "dl1.24xlarge", dlOD, dlSpot},
		{"dl2q", "dl2q.24xlarge", dlOD, dlSpot},
		{"hpc is HPC, not H; no Spot", "hpc7a.96xlarge", hpcOD, ""},
		{"hpc6id", "hpc6id.32xlarge", hpcOD, ""},
		{"u- is High Memory, not X; no Spot", "u-6tb1.metal", hmOD, ""},
		{"u7i High Memory", "u7i-12tb.224xlarge", hmOD, ""},
		{"x", "x2iedn.xlarge", xOD, xSpot},
		{"x1e", "x1e.xlarge", xOD, xSpot},
		{"g", "g5.xlarge", gOD, gSpot},
		{"g: gr6", "gr6.4xlarge", gOD, gSpot},
		{"vt is G and VT", "vt1.3xlarge", gOD, gSpot},
		{"p", "p4d.24xlarge", pOD, pSpot},
		{"p3dn", "p3dn.24xlarge", pOD, pSpot},
		{"p5: On-Demand P, its own Spot", "p5.48xlarge", pOD, p5Spot},
		{"p5en", "p5en.48xlarge", pOD, p5Spot},
		{"p6-b200", "p6-b200.48xlarge", pOD, pSpot},
		{"inf is Inf, not I", "inf2.xlarge", infOD, infSpot},
		{"trn is Trn, not T", "trn1n.32xlarge", trnOD, trnSpot},
		{"trn2", "trn2.48xlarge", trnOD, trnSpot},
		{"f", "f1.2xlarge", fOD, fSpot},
		{"f2", "f2.12xlarge", fOD, fSpot},
		{"mac: Dedicated Hosts, no vCPU quota", "mac2.metal", "", ""},
		{"unknown family", "q9.large", "", ""},
		{"empty", "", "", ""},
		{"upper case is read as lower", "M5.Large", stdOD, stdSpot},
	} {
		od, whyOD := QuotaFor(tc.typ, OnDemand)
		spot, whySpot := QuotaFor(tc.typ, Spot)
		if od != tc.od || spot != tc.spot {
			t.Errorf("%s: %s → On-Demand %q Spot %q; want %q %q", tc.desc, tc.typ, od, spot, tc.od, tc.spot)
		}
		if (od == "") != (whyOD != "") || (spot == "") != (whySpot != "") {
			t.Errorf("%s: a missing quota must come with a reason: %q %q", tc.desc, whyOD, whySpot)
		}
	}
}

// Every family quota is in the catalogue, with a describe source.
func TestFamilyQuotasInCatalogue(t *testing.T) {
	have := map[string]QuotaDef{}
	for _, d := range Catalogue {
		have[d.Key()] = d
	}
	for _, f := range VCPUFamilies {
		for _, code := range []string{f.OnDemand, f.Spot} {
			if code == "" {
				continue
			}
			d, ok := have["ec2/"+code]
			if !ok || !strings.HasPrefix(d.Describe, "ec2_") || !strings.Contains(d.Name, "vCPUs") {
				t.Errorf("family %s: quota %s missing or without a describe source: %+v", f.Name, code, d)
			}
		}
	}
}

func TestVCPUUsage(t *testing.T) {
	vc := map[string]int{"m5.large": 2, "c5.4xlarge": 16, "p5.48xlarge": 192, "g5.xlarge": 4, "mac2.metal": 12}
	std, stdSpot := "ec2/L-1216C47A", "ec2/L-34B43A08"
	for _, c := range []struct {
		desc    string
		ins     []instanceUse
		reqs    []spotRequestUse
		want    map[string]float64
		wantErr string
	}{
		{desc: "nothing running", want: map[string]float64{}},
		{desc: "On-Demand only", ins: []instanceUse{{"m5.large", ""}, {"c5.4xlarge", ""}}, want: map[string]float64{std: 18}},
		{desc: "Spot instance on the Spot quota, never On-Demand", ins: []instanceUse{{"m5.large", ""}, {"c5.4xlarge", "spot"}},
			want: map[string]float64{std: 2, stdSpot: 16}},
		{desc: "open request counts before it is fulfilled", reqs: []spotRequestUse{{"c5.4xlarge", "open"}},
			want: map[string]float64{stdSpot: 16}},
		{desc: "active request not counted twice: its instance is", ins: []instanceUse{{"c5.4xlarge", "spot"}},
			reqs: []spotRequestUse{{"c5.4xlarge", "active"}}, want: map[string]float64{stdSpot: 16}},
		{desc: "closed, cancelled, failed, disabled requests count nothing",
			reqs: []spotRequestUse{{"m5.large", "closed"}, {"m5.large", "cancelled"}, {"m5.large", "failed"}, {"m5.large", "disabled"}},
			want: map[string]float64{}},
		{desc: "open and running together", ins: []instanceUse{{"m5.large", "spot"}, {"m5.large", "spot"}},
			reqs: []spotRequestUse{{"m5.large", "open"}, {"m5.large", "open"}, {"m5.large", "active"}}, want: map[string]float64{stdSpot: 8}},
		{desc: "open P5 request on the P5 Spot quota", reqs: []spotRequestUse{{"p5.48xlarge", "open"}},
			want: map[string]float64{"ec2/L-C4BD4855": 192}},
		{desc: "open G request on the G and VT Spot quota", reqs: []spotRequestUse{{"g5.xlarge", "open"}},
			want: map[string]float64{"ec2/L-3819A6DF": 4}},
		{desc: "open request without a launch type is skipped", reqs: []spotRequestUse{{"", "open"}}, want: map[string]float64{}},
		{desc: "scheduled instance and mac draw on no watched quota", ins: []instanceUse{{"m5.large", "scheduled"}, {"mac2.metal", ""}},
			want: map[string]float64{}},
		{desc: "unknown vCPUs of a running type fail", ins: []instanceUse{{"z1d.large", ""}}, wantErr: "z1d.large"},
		{desc: "unknown vCPUs of an open request fail", reqs: []spotRequestUse{{"z1d.large", "open"}}, wantErr: "z1d.large"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			got, err := vcpuUsage(c.ins, c.reqs, vc)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

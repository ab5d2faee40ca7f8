package guest

// features maps product names to the feature_name a lease for them carries.
var features = map[string]string{
	"NVIDIA Virtual Applications":            "GRID-Virtual-Apps",
	"GRID Virtual Applications":              "GRID-Virtual-Apps",
	"NVIDIA Virtual PC":                      "GRID-Virtual-PC",
	"GRID Virtual PC":                        "GRID-Virtual-PC",
	"NVIDIA RTX Virtual Workstation":         "Quadro-Virtual-DWS",
	"Quadro Virtual Data Center Workstation": "Quadro-Virtual-DWS",
	"NVIDIA vGaming":                         "GRID-vGaming",
	"GRID vGaming":                           "GRID-vGaming",
	"NVIDIA Virtual Compute Server":          "NVIDIA-vComputeServer",
	"NVIDIA OVE Licensing":                   "OVE_Licensing",
	"GRID-Virtual-Apps-3.0":                  "GRID-Virtual-Apps",
	"GRID-Virtual-PC-2.0":                    "GRID-Virtual-PC",
	"GRID-Virtual-WS-2.0":                    "GRID-Virtual-WS",
	"GRID-Virtual-WS-Ext-2.0":                "GRID-Virtual-WS-Ext",
	"Quadro-Virtual-DWS-5.0":                 "Quadro-Virtual-DWS",
	"GRID-vGaming-8.0":                       "GRID-vGaming",
	"GRID-vGaming-NLS-Metered-8.0":           "GRID-vGaming-NLS-Metered",
	"NVIDIA-vComputeServer-9.0":              "NVIDIA-vComputeServer",
	"NVIDIA-vComputeServer NLS Metered-9.0":  "NVIDIA-vComputeServer NLS Metered",
	"NVAIE_Licensing-1.0":                    "NVAIE_Licensing",
	"vGaming_FB_License-0.1":                 "vGaming_FB_License",
	"vGaming_Flexera_License-0.1":            "vGaming_Flexera_License",
}

// FeatureName returns the feature_name the server must put in a lease for
// product, and whether the product is one of the protocol's known products.
// For an unknown product the server must still grant the lease, with the
// product name itself as feature_name; FeatureName returns that too.
func FeatureName(product string) (string, bool) {
	if f, ok := features[product]; ok {
		return f, true
	}
	return product, false
}

// Products returns the known product names, in no particular order.
func Products() []string {
	out := make([]string, 0, len(features))
	for p := range features {
		out = append(out, p)
	}
	return out
}

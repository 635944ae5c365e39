rule Third { strings: $a = "SLUICE-TEST-C" condition: $a }

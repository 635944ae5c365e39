rule Sluice_Test_Webshell
{
    meta:
        category = "webshell"
        severity = 2
    strings:
        $a = "SLUICE-TEST-WEBSHELL"
    condition:
        $a
}

rule Sluice_Test_No_Meta
{
    strings:
        $a = "SLUICE-TEST-NO-META"
    condition:
        $a
}

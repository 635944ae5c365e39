rule Sluice_Test_Slow
{
    strings:
        $a = { 00 ?? 01 }
    condition:
        $a
}

<#
.SYNOPSIS
    Removes the pagewise device and driver package and turns Driver Verifier off.

.DESCRIPTION
    1. 'pnputil /remove-device <instance>' for every device node with hardware ID
       Root\Pagewise, present or not.
    2. Finds the published name (oemNN.inf) of every driver-store package whose original
       name is pagewise.inf in 'pnputil /enum-drivers', and deletes it with
       'pnputil /delete-driver oemNN.inf /uninstall /force'.
    3. 'verifier /reset' when pagewise.sys is among the verified drivers (this clears all
       Driver Verifier settings; the script warns first if other drivers were verified),
       and removes the KMDF verifier values (Services\pagewise\Parameters\Wdf).
    4. With -RemoveCertificate, deletes the test certificate from LocalMachine\Root and
       TrustedPublisher (found by the .cer in -PackageDir).
    Verifier changes take effect at the next boot; the script says so and never reboots.
    Safe to re-run: whatever is already gone is skipped.

.PARAMETER RemoveCertificate
    Also remove the test certificate (needs -PackageDir or the default package folder).

.PARAMETER PackageDir
    Where the .cer is, for -RemoveCertificate.

.EXAMPLE
    .\Uninstall.ps1
#>
[CmdletBinding()]
param(
    [switch]$RemoveCertificate,
    [string]$PackageDir
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

Assert-Administrator

Write-Step 'Removing devices'
$devices = @(Get-PagewiseDevice)
if ($devices.Count -eq 0) { Write-Host '    none' }
foreach ($device in $devices) {
    $r = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/remove-device', $device.InstanceId) -AllowedExitCodes @(0, 3010)
    if ($r.ExitCode -eq 3010) { Write-Warning "$($device.InstanceId) is removed at the next reboot." }
}

Write-Step 'Deleting driver packages'
# 'pnputil /enum-drivers' prints one block per package, "Label: value" lines separated by
# blank lines. The labels are localised; the values are not: a block belongs to pagewise
# when one value is pagewise.inf, and its published name is the value shaped oemNN.inf.
$enum = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/enum-drivers') -Quiet
$published = New-Object System.Collections.Generic.List[string]
$block = New-Object System.Collections.Generic.List[string]
foreach ($line in (@($enum.StdOut) + '')) {
    if ($line.Trim()) {
        $block.Add($line)
        continue
    }
    $values = @($block | ForEach-Object { ($_ -split ':', 2)[-1].Trim() })
    if ($values -contains $PagewiseInf) {
        $oem = @($values | Where-Object { $_ -match '^oem\d+\.inf$' }) | Select-Object -First 1
        if ($null -ne $oem) { $published.Add($oem) }
    }
    $block.Clear()
}
if ($published.Count -eq 0) { Write-Host '    none' }
foreach ($oem in $published) {
    $r = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/delete-driver', $oem, '/uninstall', '/force') -AllowedExitCodes @(0, 3010)
    if ($r.ExitCode -eq 3010) { Write-Warning "$oem is deleted at the next reboot." }
}

Write-Step 'Driver Verifier'
$listed = @((Get-VerifierSettings).Drivers)
if ($listed -contains $PagewiseSys) {
    $others = @($listed | Where-Object { $_ -ne $PagewiseSys })
    if ($others.Count -gt 0) {
        Write-Warning "verifier /reset also stops verifying: $($others -join ', ')"
    }
    Invoke-Native -FilePath 'verifier.exe' -ArgumentList @('/reset') -AllowedExitCodes @(0, 2) | Out-Null
    Write-Warning 'Driver Verifier is off from the next boot.'
} else {
    Write-Host '    pagewise.sys is not configured for verification'
}
$wdfKey = "HKLM:\System\CurrentControlSet\Services\$PagewiseService\Parameters\Wdf"
if (Test-Path -LiteralPath $wdfKey) {
    foreach ($name in @('VerifierOn', 'DbgBreakOnError', 'VerboseOn')) {
        Remove-ItemProperty -LiteralPath $wdfKey -Name $name -ErrorAction SilentlyContinue
    }
    Write-Host '    KMDF verifier values removed'
}

if ($RemoveCertificate) {
    Write-Step 'Removing the test certificate'
    $package = Find-PackageDir -Explicit $PackageDir
    foreach ($cer in @(Get-ChildItem -LiteralPath $package -Filter '*.cer')) {
        $thumbprint = (New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($cer.FullName)).Thumbprint
        foreach ($store in @('Root', 'TrustedPublisher')) {
            $path = Join-Path "Cert:\LocalMachine\$store" $thumbprint
            if (Test-Path -LiteralPath $path) {
                Remove-Item -LiteralPath $path
                Write-Host "    removed $thumbprint from LocalMachine\$store"
            }
        }
    }
}

$left = @(Get-PresentPagewiseDevice)
if ($left.Count -gt 0) {
    throw "Still present: $(@($left | ForEach-Object { $_.InstanceId }) -join ', ') (reboot and re-run)"
}
Write-Host 'pagewise is uninstalled.' -ForegroundColor Green

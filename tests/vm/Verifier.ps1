<#
.SYNOPSIS
    Puts pagewise.sys, and only it, under Driver Verifier and the KMDF verifier.

.DESCRIPTION
    1. 'verifier /standard /driver pagewise.sys'. The standard set is /flags 0x209BB and
       includes Force IRQL Checking (0x2): whenever the driver raises IRQL to DISPATCH_LEVEL
       or takes a spin lock, the kernel first trims all pageable memory, so a touch of
       pageable code or data at raised IRQL faults at once instead of only when the page
       happened to be out. That is the run-time check of this project's placement rules
       (no PAGE code on dispatch paths); 'cargo pagecheck' is the static one. The script
       reads 'verifier /querysettings' back and fails if Force IRQL checking is not enabled.
       /standard also enables the DDI compliance checks and WDF verification.
    2. The KMDF verifier, in HKLM\System\CurrentControlSet\Services\pagewise\Parameters\Wdf:
       VerifierOn = 1 (framework checks of the driver's use of WDF), DbgBreakOnError, and
       VerboseOn = 1 with -WdfVerbose (verbose framework log, !wdflogdump).
       DbgBreakOnError = 1 makes the framework break into the kernel debugger on an error.
       Without a debugger attached that break is a bug check, and the run never gets to
       report anything, so by default (-BreakOnError Auto) the script sets it to 1 only when
       'bcdedit /enum {current}' shows kernel debugging on, and to 0 otherwise. It writes 0
       rather than leaving the value out: with VerifierOn set and no DbgBreakOnError value,
       the framework breaks all the same.
    3. Driver Verifier settings take effect at the next boot. The script says so and stops;
       with -Reboot it asks for confirmation and then restarts. It never reboots unasked.
    Safe to re-run: settings already in place are left alone, and no reboot is requested
    when nothing changed and verifier is already active for the driver.

.PARAMETER WdfVerbose
    Also set VerboseOn = 1.

.PARAMETER BreakOnError
    Auto (default): DbgBreakOnError = 1 when kernel debugging is on for the current boot
    entry (bcdedit /debug on, with a debugger to attach), else 0. On or Off forces the value.

.PARAMETER Reboot
    Offer to restart now (asks first).

.EXAMPLE
    .\Verifier.ps1 -Reboot
.EXAMPLE
    .\Verifier.ps1 -BreakOnError On
#>
[CmdletBinding()]
param(
    [switch]$WdfVerbose,
    [ValidateSet('Auto', 'On', 'Off')][string]$BreakOnError = 'Auto',
    [switch]$Reboot
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

Assert-Administrator
$changed = $false

Write-Step 'Driver Verifier: standard checks for pagewise.sys'
$settings = Get-VerifierSettings
$others = @($settings.Drivers | Where-Object { $_ -ne $PagewiseSys })
if ($others.Count -gt 0) {
    Write-Warning "Other drivers are configured for verification too: $($others -join ', '). This script only adds pagewise.sys."
}
if ($settings.Drivers -contains $PagewiseSys -and $settings.ForceIrql) {
    Write-Host '    already configured'
} else {
    $list = @($PagewiseSys) + $others
    # verifier returns 2 when it changed settings that need a reboot.
    Invoke-Native -FilePath 'verifier.exe' -ArgumentList (@('/standard', '/driver') + $list) -AllowedExitCodes @(0, 2) | Out-Null
    $changed = $true
    $settings = Get-VerifierSettings
}
if ($settings.Drivers -notcontains $PagewiseSys) {
    throw "verifier /querysettings does not list $PagewiseSys after configuring it:`n$($settings.Text)"
}
if (-not $settings.ForceIrql) {
    throw "Force IRQL checking (0x2) is not enabled although /standard includes it:`n$($settings.Text)"
}
Write-Host ('    Force IRQL checking: enabled (part of /standard, flags 0x209BB); VerifyDriverLevel = 0x{0:X}' -f $settings.Level)

Write-Step 'KMDF verifier registry values'
$wdfKey = "HKLM:\System\CurrentControlSet\Services\$PagewiseService\Parameters\Wdf"
if (-not (Test-Path -LiteralPath "HKLM:\System\CurrentControlSet\Services\$PagewiseService")) {
    throw "Service $PagewiseService is not installed: run Install.ps1 first."
}
if (-not (Test-Path -LiteralPath $wdfKey)) {
    New-Item -Path $wdfKey -Force | Out-Null
}
$debugging = Test-BcdOn (Get-BcdCurrentValue -Element 'debug')
if ($BreakOnError -eq 'On') {
    $breakOnErrorValue = 1
} elseif ($BreakOnError -eq 'Off') {
    $breakOnErrorValue = 0
} elseif ($debugging) {
    $breakOnErrorValue = 1
} else {
    $breakOnErrorValue = 0
}
Write-Host "    kernel debugging in the current boot entry: $(if ($debugging) { 'on' } else { 'off' }); DbgBreakOnError = $breakOnErrorValue ($BreakOnError)"
if ($breakOnErrorValue -eq 1 -and -not $debugging) {
    Write-Warning 'DbgBreakOnError = 1 without kernel debugging: a framework error will bug-check the VM.'
}
$values = [ordered]@{ VerifierOn = 1; DbgBreakOnError = $breakOnErrorValue }
if ($WdfVerbose) { $values['VerboseOn'] = 1 }
foreach ($name in $values.Keys) {
    $current = Get-ItemProperty -LiteralPath $wdfKey -Name $name -ErrorAction SilentlyContinue
    if ($null -ne $current -and $current.$name -eq $values[$name]) {
        Write-Host "    $name = $($values[$name]) (already)"
    } else {
        New-ItemProperty -LiteralPath $wdfKey -Name $name -PropertyType DWord -Value $values[$name] -Force | Out-Null
        Write-Host "    $name = $($values[$name])"
        $changed = $true
    }
}

# Active now? 'verifier /query' lists the drivers verified in this boot.
$active = (Get-VerifierQuery).Verified -contains $PagewiseSys
$rebootNeeded = $changed -or -not $active
if (-not $rebootNeeded) {
    Write-Host 'Driver Verifier is active for pagewise.sys; no reboot needed.' -ForegroundColor Green
} else {
    Write-Warning 'Driver Verifier and the KMDF verifier take effect at the next boot.'
    if ($Reboot) {
        if ($PSCmdlet.ShouldContinue('Restart this computer now to activate Driver Verifier for pagewise.sys?', 'Reboot')) {
            Restart-Computer
        } else {
            Write-Host 'Not restarting. Restart when ready, then run Exercise.ps1.'
        }
    } else {
        Write-Host 'Restart when ready (Restart-Computer, or re-run with -Reboot), then run Exercise.ps1.'
    }
}
[pscustomobject]@{ Changed = $changed; Active = $active; RebootRequired = $rebootNeeded; DbgBreakOnError = $breakOnErrorValue }

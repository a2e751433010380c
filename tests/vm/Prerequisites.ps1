<#
.SYNOPSIS
    Checks that this machine can load the pagewise test-signed KMDF driver.

.DESCRIPTION
    Checks, and reports as a table (and as JSON with -OutputDir):
      - the session is elevated;
      - test signing is on for the current boot entry (bcdedit /enum {current});
      - BitLocker does not protect the system volume while test signing is still to be
        turned on: BitLocker checks the boot configuration, so changing it makes the next
        boot ask for the recovery key unless protection is suspended for that restart;
      - Secure Boot is off (with Secure Boot on, Windows ignores testsigning), or the
        firmware is legacy BIOS where Confirm-SecureBootUEFI is not supported;
      - the OS build runs the driver's KMDF version: KMDF 1.33 (the default target)
        needs Windows 11 21H2, build 22000, or later; 1.31 needs Windows 10 2004 (19041);
      - the installed framework (Wdf01000.sys) is at least that KMDF version;
      - the tools the other scripts use: devgen.exe or devcon.exe (one is required to
        create the device; -DeviceTool as in Install.ps1), pnputil.exe and verifier.exe (in
        Windows), pwrtest.exe (optional, sleep cycles). Copy devgen, devcon and pwrtest from
        the WDK's Tools\<version>\x64 folder next to these scripts.
    Changes nothing unless -EnableTestSigning is given, which runs
    'bcdedit /set testsigning on' (takes effect after a reboot, which it does not do). If
    BitLocker protects the system volume, that needs -SuspendBitLocker too, which suspends
    protection until the next restart (Suspend-BitLocker -RebootCount 1); BitLocker resumes
    by itself after that restart, sealed to the new boot configuration.
    Safe to re-run.

.PARAMETER KmdfMinor
    The KMDF minor version the driver targets (target-kmdf-version-minor in Cargo.toml).
    When -PackageDir holds pagewise.inf, its KmdfLibraryVersion wins.

.PARAMETER PackageDir
    The driver package folder, to read the KMDF version from the INF. Optional.

.PARAMETER DeviceTool
    Auto (default: devgen if found, else devcon), Devgen or Devcon: which device tool must
    be present.

.PARAMETER DevgenPath
    devgen.exe, if it is not on PATH or in the WDK tools folder.

.PARAMETER DevconPath
    devcon.exe, if it is not on PATH or in the WDK tools folder.

.PARAMETER EnableTestSigning
    Turn test signing on when it is off (needs Secure Boot off, then a reboot).

.PARAMETER SuspendBitLocker
    With -EnableTestSigning: suspend BitLocker on the system volume until the next restart
    first, when it protects it. Without it the script refuses to change the boot
    configuration of a BitLocker-protected system.

.PARAMETER OutputDir
    Write prerequisites.json there.

.EXAMPLE
    .\Prerequisites.ps1
.EXAMPLE
    .\Prerequisites.ps1 -EnableTestSigning -SuspendBitLocker
#>
[CmdletBinding()]
param(
    [int]$KmdfMinor = 33,
    [string]$PackageDir,
    [ValidateSet('Auto', 'Devgen', 'Devcon')][string]$DeviceTool = 'Auto',
    [string]$DevgenPath,
    [string]$DevconPath,
    [switch]$EnableTestSigning,
    [switch]$SuspendBitLocker,
    [string]$OutputDir
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

# First Windows build that ships each KMDF minor version (the framework is inbox and
# cannot be installed on older builds).
$minimumBuild = @{ 29 = 18362; 31 = 19041; 33 = 22000 }

$checks = New-Object System.Collections.Generic.List[object]
function Add-Check {
    param([string]$Name, [bool]$Ok, [string]$Detail, [switch]$Optional)
    $status = 'ok'
    if (-not $Ok) {
        if ($Optional) { $status = 'missing (optional)' } else { $status = 'FAIL' }
    }
    $checks.Add([pscustomobject]@{ Check = $Name; Status = $status; Detail = $Detail; Required = (-not $Optional) })
}

# Administrator.
$isAdmin = Test-Administrator
Add-Check 'administrator' $isAdmin $(if ($isAdmin) { 'elevated session' } else { 'run PowerShell as administrator' })

# Secure Boot. Confirm-SecureBootUEFI throws on legacy BIOS ("not supported on this
# platform") and without elevation (access denied); only the first means "no Secure Boot".
$secureBoot = 'unknown'
try {
    if (Confirm-SecureBootUEFI) { $secureBoot = 'on' } else { $secureBoot = 'off' }
} catch [System.PlatformNotSupportedException] {
    $secureBoot = 'unsupported (legacy BIOS)'
} catch {
    if ($_.Exception.Message -match '(?i)not supported') {
        $secureBoot = 'unsupported (legacy BIOS)'
    } else {
        $secureBoot = "unknown: $($_.Exception.Message)"
    }
}
$secureBootOk = $secureBoot -ne 'on' -and -not $secureBoot.StartsWith('unknown')
$secureBootDetail = $secureBoot
if ($secureBoot -eq 'on') {
    $secureBootDetail = 'on: test-signed drivers will not load. Turn it off in the VM firmware settings (Hyper-V: Set-VMFirmware <vm> -EnableSecureBoot Off)'
}
Add-Check 'secure boot off' $secureBootOk $secureBootDetail

# BitLocker on the system volume. Get-BitLockerVolume needs elevation and the BitLocker
# module, which some editions lack; either way there is no protection this script can see.
$bitLocker = 'not available'
if ($isAdmin -and (Get-Command 'Get-BitLockerVolume' -ErrorAction SilentlyContinue)) {
    try {
        $bitLocker = [string](Get-BitLockerVolume -MountPoint $env:SystemDrive -ErrorAction Stop).ProtectionStatus
    } catch {
        $bitLocker = "unknown: $($_.Exception.Message)"
    }
}
$bitLockerSuspended = $false

# Test signing, from the current boot entry. The element name is not localised.
$testSigning = $false
$bcdDetail = 'not readable without elevation'
if ($isAdmin) {
    $value = Get-BcdCurrentValue -Element 'testsigning'
    $testSigning = Test-BcdOn $value
    if ($null -ne $value) {
        $bcdDetail = "testsigning $value"
    } else {
        $bcdDetail = 'testsigning not set'
    }
    if (-not $testSigning -and $EnableTestSigning) {
        if ($secureBoot -eq 'on') {
            throw 'Turn Secure Boot off first: bcdedit refuses testsigning while it is on.'
        }
        if ($bitLocker -eq 'On') {
            if (-not $SuspendBitLocker) {
                throw "BitLocker protects ${env:SystemDrive}: changing the boot configuration now makes the next boot ask for the recovery key. Re-run with -SuspendBitLocker (or run Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1 yourself) first."
            }
            Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1 | Out-Null
            $bitLockerSuspended = $true
        }
        Invoke-Native -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', 'on') | Out-Null
        $bcdDetail = 'turned on now: reboot before installing the driver'
    }
}
Add-Check 'test signing' ($testSigning -or $EnableTestSigning.IsPresent) $bcdDetail
$bitLockerDetail = $bitLocker
if ($bitLockerSuspended) {
    $bitLockerDetail = 'suspended until the next restart, for the test signing change'
} elseif ($bitLocker -eq 'On' -and -not $testSigning) {
    $bitLockerDetail = 'On: suspend it before turning test signing on (-EnableTestSigning -SuspendBitLocker)'
}
Add-Check 'bitlocker' (($bitLocker -ne 'On') -or $testSigning -or $bitLockerSuspended) $bitLockerDetail

# KMDF version the package needs.
$kmdfSource = 'parameter'
if ($PackageDir) {
    $inf = Join-Path (Find-PackageDir -Explicit $PackageDir) $PagewiseInf
    $kmdfLine = Select-String -LiteralPath $inf -Pattern '^\s*KmdfLibraryVersion\s*=\s*1\.(\d+)' | Select-Object -First 1
    if ($null -ne $kmdfLine) {
        $KmdfMinor = [int]$kmdfLine.Matches[0].Groups[1].Value
        $kmdfSource = 'pagewise.inf'
    }
}

# OS build (registry: [Environment]::OSVersion can be shimmed).
$cv = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$build = [int]$cv.CurrentBuildNumber
$ubr = 0
if ($cv.PSObject.Properties.Name -contains 'UBR') { $ubr = [int]$cv.UBR }
$productName = $cv.ProductName
if ($build -ge 22000) { $productName = $productName -replace 'Windows 10', 'Windows 11' }
$needed = $null
if ($minimumBuild.ContainsKey($KmdfMinor)) { $needed = $minimumBuild[$KmdfMinor] }
if ($null -eq $needed) {
    Add-Check "OS build for KMDF 1.$KmdfMinor" $true "build $build.$ubr; no known minimum for KMDF 1.$KmdfMinor, relying on the framework check below"
} else {
    Add-Check "OS build for KMDF 1.$KmdfMinor ($kmdfSource)" ($build -ge $needed) "$productName build $build.$ubr; needs $needed or later"
}

# Installed framework version: Wdf01000.sys carries 1.<minor>.<build>.<rev>.
$wdf = Join-Path $env:SystemRoot 'System32\drivers\Wdf01000.sys'
if (Test-Path -LiteralPath $wdf) {
    $fileVersion = (Get-Item -LiteralPath $wdf).VersionInfo.FileVersion
    $installedMinor = -1
    if ($fileVersion -match '^1\.(\d+)') { $installedMinor = [int]$Matches[1] }
    Add-Check "framework KMDF >= 1.$KmdfMinor" ($installedMinor -ge $KmdfMinor) "Wdf01000.sys $fileVersion"
} else {
    Add-Check "framework KMDF >= 1.$KmdfMinor" $false 'Wdf01000.sys not found'
}

# Tools.
# Not $deviceTool: PowerShell names ignore case, and that is the -DeviceTool parameter.
$foundTool = Find-DeviceTool -Choice $DeviceTool -DevgenPath $DevgenPath -DevconPath $DevconPath
$foundToolDetail = 'copy devgen.exe (or devcon.exe) from the WDK (Tools\<version>\x64) next to these scripts, or pass -DevgenPath / -DevconPath'
if ($null -ne $foundTool) { $foundToolDetail = "$($foundTool.Name): $($foundTool.Path)" }
Add-Check "device tool ($DeviceTool)" ($null -ne $foundTool) $foundToolDetail
$pnputil = Get-Command 'pnputil.exe' -ErrorAction SilentlyContinue
Add-Check 'pnputil.exe' ($null -ne $pnputil) 'inbox'
$verifier = Get-Command 'verifier.exe' -ErrorAction SilentlyContinue
Add-Check 'verifier.exe' ($null -ne $verifier) 'inbox'
$pwrtest = Find-Tool -Name 'pwrtest.exe'
Add-Check 'pwrtest.exe' ($null -ne $pwrtest) $(if ($pwrtest) { $pwrtest } else { 'sleep cycles will be skipped' }) -Optional

$checks | Format-Table -AutoSize | Out-String -Width 200 | Write-Host

if ($OutputDir) {
    New-Item -ItemType Directory -Force -Path $OutputDir | Out-Null
    $checks | ConvertTo-Json -Depth 4 | Set-Content -LiteralPath (Join-Path $OutputDir 'prerequisites.json') -Encoding ASCII
}

$failed = @($checks | Where-Object { $_.Status -eq 'FAIL' })
if ($failed.Count -gt 0) {
    throw "Prerequisites not met: $(($failed | ForEach-Object { $_.Check }) -join ', ')"
}
Write-Host 'All prerequisites met.' -ForegroundColor Green

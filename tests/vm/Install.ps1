<#
.SYNOPSIS
    Installs (or updates) the pagewise driver package and its root-enumerated device.

.DESCRIPTION
    1. Imports the package's test certificate (the .cer that 'cargo make' writes next to
       the driver, WDRLocalTestCert) into LocalMachine\Root and LocalMachine\TrustedPublisher,
       unless it is there already, so the test-signed catalog is trusted without prompts.
    2. Creates the device if no device with hardware ID Root\Pagewise exists. A
       root-enumerated device node has to be created by someone, and pnputil cannot:
       - devgen, which Microsoft now recommends ('devgen /add /bus ROOT /hardwareid
         Root\Pagewise'; ROOT because the node must survive the reboots Driver Verifier
         needs, where devgen's default software device would not), then
         'pnputil /add-driver pagewise.inf /install' binds the driver to it;
       - or devcon ('devcon install pagewise.inf Root\Pagewise'), for kits without devgen.
       -DeviceTool chooses; Auto takes devgen when it is found. If the device exists, its
       driver is updated: 'pnputil /add-driver pagewise.inf /install'.
    3. Verifies that exactly one pagewise device is present and started (Get-PnpDevice
       status OK, problem code 0), shows 'pnputil /enum-devices' for it, checks that the
       pagewise kernel service runs, and, if pagewisectl.exe is found, that the driver
       answers 'pagewisectl version'.
    Safe to re-run: an existing certificate is left alone, an existing device is updated.

.PARAMETER PackageDir
    The package folder (target\<profile>\pagewise_package). Default: next to the scripts,
    then the repository's target\release and target\debug.

.PARAMETER DeviceTool
    Auto (default: devgen if found, else devcon), Devgen or Devcon: what creates the device
    node on a first install.

.PARAMETER DevgenPath
    devgen.exe, if not on PATH, in the WDK tools folder or next to the scripts.

.PARAMETER DevconPath
    devcon.exe, if not on PATH, in the WDK tools folder or next to the scripts.

.PARAMETER ClientPath
    pagewisectl.exe, for the final check. Optional.

.EXAMPLE
    .\Install.ps1 -PackageDir C:\pagewise\pagewise_package
.EXAMPLE
    .\Install.ps1 -DeviceTool Devcon
#>
[CmdletBinding()]
param(
    [string]$PackageDir,
    [ValidateSet('Auto', 'Devgen', 'Devcon')][string]$DeviceTool = 'Auto',
    [string]$DevgenPath,
    [string]$DevconPath,
    [string]$ClientPath
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

Assert-Administrator
$package = Find-PackageDir -Explicit $PackageDir
$inf = Join-Path $package $PagewiseInf
foreach ($file in @($PagewiseInf, $PagewiseSys, 'pagewise.cat')) {
    if (-not (Test-Path -LiteralPath (Join-Path $package $file) -PathType Leaf)) {
        throw "$file missing from ${package}: build the package with 'cargo make'."
    }
}
Write-Step "Package: $package"

Write-Step 'Trusting the test certificate'
$cers = @(Get-ChildItem -LiteralPath $package -Filter '*.cer')
if ($cers.Count -eq 0) {
    throw "No .cer in ${package}: 'cargo make' exports the signing certificate there."
}
foreach ($cer in $cers) {
    $certificate = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($cer.FullName)
    foreach ($store in @('Root', 'TrustedPublisher')) {
        $location = "Cert:\LocalMachine\$store"
        if (Test-Path -LiteralPath (Join-Path $location $certificate.Thumbprint)) {
            Write-Host "    $($certificate.Subject) already in LocalMachine\$store"
        } else {
            Import-Certificate -FilePath $cer.FullName -CertStoreLocation $location | Out-Null
            Write-Host "    imported $($certificate.Subject) ($($certificate.Thumbprint)) into LocalMachine\$store"
        }
    }
}

$existing = @(Get-PagewiseDevice)
if ($existing.Count -eq 0) {
    Write-Step "Creating the root-enumerated device $PagewiseHardwareId"
    $tool = Find-DeviceTool -Choice $DeviceTool -DevgenPath $DevgenPath -DevconPath $DevconPath
    if ($null -eq $tool) {
        throw "No device tool for -DeviceTool ${DeviceTool}: copy devgen.exe (or devcon.exe) from the WDK's Tools\<version>\x64 folder next to these scripts, or pass -DevgenPath or -DevconPath."
    }
    Write-Host "    with $($tool.Name): $($tool.Path)"
    if ($tool.Name -eq 'devgen') {
        Invoke-Native -FilePath $tool.Path -ArgumentList @('/add', '/bus', 'ROOT', '/hardwareid', $PagewiseHardwareId) | Out-Null
        # 3010: installed, reboot needed.
        $result = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/add-driver', $inf, '/install') -AllowedExitCodes @(0, 3010)
        if ($result.ExitCode -eq 3010) {
            Write-Warning 'pnputil reports that a reboot is needed to finish the installation.'
        }
    } else {
        # devcon: 0 success, 1 success but a reboot is needed, 2 failure, 3 usage error.
        $result = Invoke-Native -FilePath $tool.Path -ArgumentList @('install', $inf, $PagewiseHardwareId) -AllowedExitCodes @(0, 1)
        if ($result.ExitCode -eq 1) {
            Write-Warning 'devcon reports that a reboot is needed to finish the installation.'
        }
    }
} else {
    Write-Step "Updating the driver of $(@($existing | ForEach-Object { $_.InstanceId }) -join ', ')"
    # 3010: installed, reboot needed. 259: nothing newer to install (the same package is
    # already on the device), which a re-run of an unchanged build legitimately hits.
    $result = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/add-driver', $inf, '/install') -AllowedExitCodes @(0, 259, 3010)
    if ($result.ExitCode -eq 3010) {
        Write-Warning 'pnputil reports that a reboot is needed to finish the update.'
    }
    foreach ($device in @(Get-PresentPagewiseDevice)) {
        if ($device.Status -ne 'OK') {
            # A device left stopped by an earlier failed install: start it again.
            Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/restart-device', $device.InstanceId) -AllowedExitCodes @(0, 3010) | Out-Null
        }
    }
}

Write-Step 'Verifying'
$device = Wait-PagewiseStarted -TimeoutSeconds 60
Write-Host "    $($device.InstanceId): $($device.Status), $($device.FriendlyName)"
try {
    # Informational: shows the driver package bound to the device (older pnputil builds
    # lack /drivers, which is no reason to fail the install).
    Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/enum-devices', '/instanceid', $device.InstanceId, '/drivers') | Out-Null
} catch {
    Write-Warning "pnputil /enum-devices: $($_.Exception.Message)"
}
$service = Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$PagewiseService'"
if ($null -eq $service -or $service.State -ne 'Running') {
    throw "The $PagewiseService kernel service is not running."
}
Write-Host "    service $PagewiseService running from $($service.PathName)"

$client = $null
try { $client = Find-Client -Explicit $ClientPath -PackageDir $package } catch { Write-Warning $_.Exception.Message }
if ($null -ne $client) {
    $version = Invoke-Client -ClientPath $client -Arguments @('version')
    Write-Host "    pagewisectl: driver $($version.Json.driver_version), interface $($version.Json.interface_version)"
}
Write-Host 'pagewise is installed and started.' -ForegroundColor Green

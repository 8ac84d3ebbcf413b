// An Android library module: ONNX Runtime Android (the .ort variant of a bundle) + the contract's noise generator.
// Not built on the machine that wrote it (no Android SDK, no Gradle, no Maven access): see README.md.
plugins {
    id("com.android.library") version "8.5.2"
    id("org.jetbrains.kotlin.android") version "1.9.24"
}

android {
    namespace = "dev.igredge"
    compileSdk = 34
    defaultConfig { minSdk = 24 }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    sourceSets["main"].java.srcDirs("src/main/kotlin")
    sourceSets["test"].java.srcDirs("src/test/kotlin")
    testOptions { unitTests.all { it.systemProperty("igr.contract", "${rootDir}/../contract") } }
}

dependencies {
    // at least the converter's ONNX Runtime (1.32): ORT-format models load on the same or newer runtimes only
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.32.0")
    testImplementation("junit:junit:4.13.2")
}

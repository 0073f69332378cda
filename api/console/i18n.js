// Texts of the console: Bahasa Indonesia (default) and English. t(key) answers in the current language.
const TEXTS = {
  id: {
    title: "Konsol Pantau", signIn: "Masuk", signOut: "Keluar", token: "Token API",
    tokenHelp: "Token dari admin: pantau users create NAMA --role technician",
    badToken: "Token tidak dikenal atau dicabut.", signedInAs: "Masuk sebagai",
    devices: "Perangkat", register: "Daftarkan", alerts: "Peringatan", map: "Peta",
    deadLetters: "Pesan gagal", import: "Impor CSV", search: "Cari", kind: "Jenis",
    district: "Kecamatan", status: "Status", any: "Semua", lastSeen: "Terakhir terlihat",
    never: "belum pernah", battery: "Baterai", rssi: "Sinyal", values: "Nilai terakhir",
    noDevices: "Tidak ada perangkat yang cocok.", active: "aktif", maintenance: "perawatan",
    retired: "pensiun", id: "ID perangkat", name: "Nama", site: "Lokasi", latitude: "Lintang",
    longitude: "Bujur", useLocation: "Pakai lokasi ponsel", thresholds: "Ambang batas",
    field: "Besaran", save: "Simpan", registered: "Perangkat terdaftar",
    passwordOnce: "Kata sandi MQTT ini hanya ditampilkan sekali. Simpan sekarang.",
    copy: "Salin", copied: "Tersalin", testLine: "Uji dengan mosquitto_pub:",
    error: "Gagal", loading: "Memuat…", language: "Bahasa", detail: "Rincian",
    last24h: "Ketinggian 24 jam terakhir", rate: "Laju kenaikan", perHour: "/jam",
    calibrate: "Kalibrasi", offset: "Offset", scale: "Skala", rotate: "Ganti kata sandi MQTT",
    setMaintenance: "Mode perawatan", setActive: "Aktifkan", retire: "Pensiunkan",
    confirmRetire: "Pensiunkan perangkat ini? Broker akan menolaknya.",
    calibrationVersion: "Versi kalibrasi", reason: "Alasan", payload: "Isi pesan",
    replay: "Kirim ulang", replayed: "Dikirim ulang", noDeadLetters: "Tidak ada pesan gagal.",
    importHelp: "Berkas CSV: id,kind,name,district,…", updateExisting: "Perbarui yang sudah ada",
    upload: "Unggah", row: "Baris", result: "Hasil",
    alertsUnavailable: "Peringatan belum tersedia di server ini (API /alerts belum ada).",
    noAlerts: "Tidak ada peringatan aktif.", ack: "Terima", resolve: "Selesaikan", note: "Catatan",
    acknowledgedBy: "Diterima oleh", live: "Langsung", mapNote: "Peta skematis Luwu Timur (koordinat perkiraan, tanpa server peta).",
    viewerNote: "Peran Anda hanya bisa melihat.", skip: "Lewati ke isi",
    waspada: "Waspada", siaga: "Siaga", awas: "Awas", newAlert: "Peringatan baru",
  },
  en: {
    title: "Pantau console", signIn: "Sign in", signOut: "Sign out", token: "API token",
    tokenHelp: "A token from an admin: pantau users create NAME --role technician",
    badToken: "Unknown or revoked token.", signedInAs: "Signed in as",
    devices: "Devices", register: "Register", alerts: "Alerts", map: "Map",
    deadLetters: "Dead letters", import: "CSV import", search: "Search", kind: "Kind",
    district: "District", status: "Status", any: "Any", lastSeen: "Last seen",
    never: "never", battery: "Battery", rssi: "Signal", values: "Latest values",
    noDevices: "No device matches.", active: "active", maintenance: "maintenance",
    retired: "retired", id: "Device id", name: "Name", site: "Site", latitude: "Latitude",
    longitude: "Longitude", useLocation: "Use the phone's location", thresholds: "Thresholds",
    field: "Field", save: "Save", registered: "Device registered",
    passwordOnce: "This MQTT password is shown once only. Save it now.",
    copy: "Copy", copied: "Copied", testLine: "Test it with mosquitto_pub:",
    error: "Failed", loading: "Loading…", language: "Language", detail: "Details",
    last24h: "Level over the last 24 h", rate: "Rate of rise", perHour: "/h",
    calibrate: "Calibrate", offset: "Offset", scale: "Scale", rotate: "Rotate MQTT password",
    setMaintenance: "Maintenance mode", setActive: "Activate", retire: "Retire",
    confirmRetire: "Retire this device? The broker will refuse it.",
    calibrationVersion: "Calibration version", reason: "Reason", payload: "Payload",
    replay: "Replay", replayed: "Replayed", noDeadLetters: "No dead letters.",
    importHelp: "A CSV file: id,kind,name,district,…", updateExisting: "Update existing devices",
    upload: "Upload", row: "Row", result: "Result",
    alertsUnavailable: "Alerts are not available on this server yet (no /alerts API).",
    noAlerts: "No active alerts.", ack: "Acknowledge", resolve: "Resolve", note: "Note",
    acknowledgedBy: "Acknowledged by", live: "Live", mapNote: "Schematic map of Luwu Timur (approximate coordinates, no map server).",
    viewerNote: "Your role can only view.", skip: "Skip to content",
    waspada: "Waspada (alert)", siaga: "Siaga (standby)", awas: "Awas (danger)", newAlert: "New alert",
  },
};

let lang = localStorage.getItem("pantau.lang") || "id";

export function t(key) {
  return (TEXTS[lang] && TEXTS[lang][key]) || TEXTS.en[key] || key;
}

export function currentLang() {
  return lang;
}

export function setLang(value) {
  lang = value in TEXTS ? value : "id";
  localStorage.setItem("pantau.lang", lang);
  document.documentElement.lang = lang;
}

// Times for people: WITA (Asia/Makassar), whatever the phone's own zone.
export function wita(iso) {
  if (!iso) return t("never");
  const fmt = new Intl.DateTimeFormat(lang === "id" ? "id-ID" : "en-GB", {
    timeZone: "Asia/Makassar", day: "2-digit", month: "short",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  return `${fmt.format(new Date(iso))} WITA`;
}
